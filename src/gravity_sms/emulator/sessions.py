"""OAuth sessions: issuing token pairs, single-use refresh with a grace window, revocation.

Owns the token lifecycle of ringcentral.md §1. It speaks in OAuth errors but knows
nothing of HTTP requests; oauth.py parses those.
"""

from __future__ import annotations

import secrets
from typing import Any

from gravity_sms.emulator.errors import ApiError, oauth_error
from gravity_sms.emulator.state import Client, EmulatorState, Extension, RefreshGrace, Session

DEFAULT_ACCESS_TTL = 3600
DEFAULT_REFRESH_TTL = 604800
MAX_REFRESH_TTL = 2592000


def token_expired() -> ApiError:
    # Exactly oauth__error_invalid_grant.json.
    return oauth_error(400, "invalid_grant", "Token expired", "OAU-210")


def token_not_found() -> ApiError:
    return oauth_error(400, "invalid_grant", "Token not found", "OAU-210")


def _ttl(value: str | None, default: int, low: int, high: int, name: str) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise oauth_error(400, "invalid_request", f"Parameter [{name}] is invalid", "OAU-101") from None
    return max(low, min(high, number))


def ttls(form: dict[str, str]) -> tuple[int, int]:
    """`access_token_ttl` (600-3600) and `refresh_token_ttl` (max 30 days), clamped."""
    access = _ttl(form.get("access_token_ttl"), DEFAULT_ACCESS_TTL, 600, 3600, "access_token_ttl")
    refresh = _ttl(form.get("refresh_token_ttl"), DEFAULT_REFRESH_TTL, 600, MAX_REFRESH_TTL, "refresh_token_ttl")
    return access, refresh


def _rotate(state: EmulatorState, session: Session, access_ttl: int, refresh_ttl: int) -> dict[str, Any]:
    now = state.clock.now()
    state.access_index.pop(session.access_token, None)
    if session.refresh_token is not None:
        state.refresh_index.pop(session.refresh_token, None)
    session.access_token = state.new_token()
    session.access_expires_at = now + access_ttl
    session.refresh_token = state.new_token()
    session.refresh_expires_at = now + refresh_ttl
    state.access_index[session.access_token] = session.session_id
    state.refresh_index[session.refresh_token] = session.session_id
    # Field for field like oauth__token.json.
    return {
        "access_token": session.access_token,
        "token_type": "bearer",
        "expires_in": access_ttl,
        "refresh_token": session.refresh_token,
        "refresh_token_expires_in": refresh_ttl,
        "scope": session.scope,
        "owner_id": session.extension_id,
        "endpoint_id": session.endpoint_id,
        "session_id": session.session_id,
    }


def open_session(
    state: EmulatorState, client: Client, extension: Extension, access_ttl: int, refresh_ttl: int
) -> dict[str, Any]:
    """A new session; past the per-user-per-app cap the oldest live one ends."""
    live = sorted(state.live_sessions(client.client_id, extension.id), key=lambda s: s.created_at)
    while len(live) >= state.config.max_sessions_per_user_app:
        state.end_session(live.pop(0))
    session = Session(
        session_id=state.new_session_id(),
        client_id=client.client_id,
        extension_id=extension.id,
        account_id=extension.account_id,
        scope=client.scope,
        endpoint_id=secrets.token_urlsafe(16),
        created_at=state.clock.now(),
    )
    state.sessions[session.session_id] = session
    return _rotate(state, session, access_ttl, refresh_ttl)


def refresh(state: EmulatorState, client: Client, token: str, access_ttl: int, refresh_ttl: int) -> dict[str, Any]:
    """Single use: the old access token dies at once; the old refresh token answers with
    the same new pair during the grace window, then is expired (ringcentral.md §1)."""
    now = state.clock.now()
    grace = state.refresh_grace.get(token)
    if grace is not None:
        if now < grace.until and _grace_client(state, grace) == client.client_id:
            return grace.response
        raise token_expired()
    session_id = state.refresh_index.get(token)
    session = state.sessions.get(session_id) if session_id else None
    if session is None or session.ended or session.client_id != client.client_id:
        raise token_not_found()
    if now >= session.refresh_expires_at:
        state.end_session(session)
        raise token_expired()
    response = _rotate(state, session, access_ttl, refresh_ttl)
    state.refresh_grace[token] = RefreshGrace(response, now + state.config.refresh_grace_seconds)
    return response


def _grace_client(state: EmulatorState, grace: RefreshGrace) -> str | None:
    session = state.sessions.get(str(grace.response["session_id"]))
    return None if session is None else session.client_id


def session_of_token(state: EmulatorState, token: str) -> Session | None:
    """The session an access, refresh or grace-window refresh token belongs to."""
    session_id = state.access_index.get(token) or state.refresh_index.get(token)
    if session_id is None and token in state.refresh_grace:
        session_id = str(state.refresh_grace[token].response["session_id"])
    return state.sessions.get(session_id) if session_id else None


def expire_access_tokens(state: EmulatorState, extension_id: str | None = None) -> int:
    now = state.clock.now()
    count = 0
    for session in state.sessions.values():
        if session.ended or (extension_id is not None and session.extension_id != extension_id):
            continue
        session.access_expires_at = min(session.access_expires_at, now)
        count += 1
    return count


def revoke_refresh_tokens(state: EmulatorState, token: str | None, extension_id: str | None) -> int:
    """Kills refresh tokens only; the access tokens live on until they expire."""
    count = 0
    for session in state.sessions.values():
        if session.ended or session.refresh_token is None:
            continue
        if (token is not None and session.refresh_token != token) or (
            extension_id is not None and session.extension_id != extension_id
        ):
            continue
        state.refresh_index.pop(session.refresh_token, None)
        session.refresh_token = None
        count += 1
    for old, grace in list(state.refresh_grace.items()):
        if token is not None and old == token:
            del state.refresh_grace[old]
        elif extension_id is not None and grace.response["owner_id"] == extension_id:
            del state.refresh_grace[old]
    return count

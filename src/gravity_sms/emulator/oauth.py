"""OAuth endpoints (ringcentral.md §1): authorize (auto-approve or a tiny page), token, revoke.

Owns parsing of the OAuth requests, client authentication, authorization codes and PKCE;
token lifecycles are in sessions.py.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import secrets
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gravity_sms.emulator import sessions
from gravity_sms.emulator.errors import ApiError, oauth_error, rate_limited
from gravity_sms.emulator.recorder import parse_form
from gravity_sms.emulator.state import AuthCode, Client, EmulatorState, Extension, state_of

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
AUTHORIZE_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "prompt",
    "ui_locales",
)


def _redirect(uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in uri else "?"
    return RedirectResponse(uri + separator + urlencode(params), status_code=302)


def _checked_request(state: EmulatorState, params: dict[str, str]) -> tuple[Client, str]:
    """Errors that must not redirect (unknown client, bad redirect_uri) raise here."""
    client = state.clients.get(params.get("client_id", ""))
    if client is None:
        raise oauth_error(400, "invalid_client", f"Invalid client: {params.get('client_id', '')}", "OAU-153")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        explicit = [u for u in client.redirect_uris if u != "*"]
        if len(explicit) != 1:
            raise oauth_error(400, "invalid_request", "Redirect URI is required", "OAU-109")
        redirect_uri = explicit[0]
    if not client.accepts_redirect(redirect_uri):
        raise oauth_error(400, "invalid_request", "Redirect URI mismatch", "OAU-109")
    return client, redirect_uri


def _refusal(params: dict[str, str]) -> dict[str, str] | None:
    """Problems reported to the client through the redirect (RFC 6749 §4.1.2.1)."""
    if params.get("response_type") != "code":
        return {"error": "unsupported_response_type", "error_description": "Unsupported response type"}
    method = params.get("code_challenge_method", "")
    if method and method not in ("plain", "S256"):
        return {"error": "invalid_request", "error_description": "Unsupported code challenge method"}
    if method and not params.get("code_challenge"):
        return {"error": "invalid_request", "error_description": "Code challenge is required"}
    return None


def _login(state: EmulatorState, params: dict[str, str], chosen: str | None) -> Extension | None:
    hint = chosen or params.get("login_hint")
    if hint:
        return state.find_extension_by_hint(hint)
    if state.next_login is not None:
        ext_id, state.next_login = state.next_login, None
        return state.extensions.get(ext_id)
    return state.first_extension()


def _with_state(params: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    if params.get("state"):
        extra["state"] = params["state"]
    return extra


def _decide(state: EmulatorState, params: dict[str, str], approve: bool, chosen: str | None) -> Response:
    client, redirect_uri = _checked_request(state, params)
    refusal = _refusal(params)
    if refusal is not None:
        return _redirect(redirect_uri, _with_state(params, refusal))
    if state.deny_next or not approve:
        state.deny_next = False
        denial = {
            "error": "access_denied",
            "error_description": "The user has denied access to the application",
        }
        return _redirect(redirect_uri, _with_state(params, denial))
    extension = _login(state, params, chosen)
    if extension is None:
        failure = {"error": "login_required", "error_description": "No such user"}
        return _redirect(redirect_uri, _with_state(params, failure))
    code = AuthCode(
        code=secrets.token_urlsafe(24),
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        extension_id=extension.id,
        challenge=params.get("code_challenge") or None,
        challenge_method=params.get("code_challenge_method") or "plain",
        expires_at=state.clock.now() + state.config.auth_code_ttl_seconds,
    )
    state.codes[code.code] = code
    expires = str(int(state.config.auth_code_ttl_seconds))
    return _redirect(redirect_uri, _with_state(params, {"code": code.code}) | {"expires_in": expires})


def _page(state: EmulatorState, params: dict[str, str]) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in params.items() if k in AUTHORIZE_PARAMS
    )
    hint = params.get("login_hint")
    options = "".join(
        f'<option value="{e.id}"{" selected" if hint in (e.id, e.extension_number) else ""}>'
        f"{html.escape(e.name)} ({e.extension_number})</option>"
        for e in state.all_extensions()
    )
    body = (
        "<!doctype html><title>RingCentral emulator - authorize</title>"
        f"<h1>Authorize {html.escape(params.get('client_id', ''))}</h1>"
        f'<form method="post" action="/restapi/oauth/authorize">{hidden}'
        f'<label>Log in as <select name="extension_id">{options}</select></label> '
        '<button name="decision" value="approve">Approve</button> '
        '<button name="decision" value="deny">Deny</button></form>'
    )
    return HTMLResponse(body)


async def authorize(request: Request) -> Response:
    state = state_of(request)
    params = dict(request.query_params)
    try:
        if request.method == "POST":
            form = parse_form(await request.body())
            fields = {k: v for k, v in form.items() if k in AUTHORIZE_PARAMS}
            return _decide(state, fields, form.get("decision") == "approve", form.get("extension_id") or None)
        if state.config.auto_approve or state.deny_next:
            return _decide(state, params, True, None)
        _checked_request(state, params)
        return _page(state, params)
    except ApiError as err:
        return err.to_response()


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str | None]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise oauth_error(401, "invalid_client", "Invalid client credentials", "OAU-123") from None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret")


def _authenticate_client(state: EmulatorState, client_id: str, secret: str | None) -> Client:
    if not client_id:
        raise oauth_error(401, "invalid_client", "Client authentication is required", "OAU-123")
    client = state.clients.get(client_id)
    if client is None:
        raise oauth_error(401, "invalid_client", f"Invalid client: {client_id}", "OAU-153")
    if secret is None or not secrets.compare_digest(secret, client.client_secret):
        raise oauth_error(401, "invalid_client", "Invalid client credentials", "OAU-123")
    return client


def _user_hint(state: EmulatorState, form: dict[str, str]) -> str:
    """Who the Auth-group bucket belongs to: the grant's user when it names one."""
    code = state.codes.get(form.get("code", ""))
    if code is not None:
        return code.extension_id
    session = sessions.session_of_token(state, form.get("refresh_token", "") or form.get("token", ""))
    return session.extension_id if session is not None else "*"


def _verifier_ok(code: AuthCode, verifier: str | None) -> bool:
    if code.challenge is None:
        return True
    if not verifier:
        return False
    if code.challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        return secrets.compare_digest(expected, code.challenge)
    return secrets.compare_digest(verifier, code.challenge)


def _exchange_code(state: EmulatorState, client: Client, form: dict[str, str]) -> dict[str, Any]:
    # A presented code is consumed whatever the outcome: codes are single use (§1).
    code = state.codes.pop(form.get("code", ""), None)
    if code is None or code.client_id != client.client_id:
        raise oauth_error(400, "invalid_grant", "Invalid authorization code", "OAU-106")
    if state.clock.now() >= code.expires_at:
        raise oauth_error(400, "invalid_grant", "Authorization code expired", "OAU-108")
    if form.get("redirect_uri", code.redirect_uri) != code.redirect_uri:
        raise oauth_error(400, "invalid_grant", "Redirect URI mismatch", "OAU-109")
    if not _verifier_ok(code, form.get("code_verifier")):
        raise oauth_error(400, "invalid_grant", "Invalid code verifier", "OAU-106")
    extension = state.extensions.get(code.extension_id)
    if extension is None:
        raise oauth_error(400, "invalid_grant", "Invalid authorization code", "OAU-106")
    access_ttl, refresh_ttl = sessions.ttls(form)
    return sessions.open_session(state, client, extension, access_ttl, refresh_ttl)


async def token(request: Request) -> Response:
    state = state_of(request)
    form = parse_form(await request.body())
    headers: dict[str, str] = {}
    try:
        client_id, secret = _client_credentials(request, form)
        verdict = state.limiter.check(_user_hint(state, form), client_id or "*", "Auth")
        headers = verdict.headers
        if not verdict.allowed:
            raise rate_limited()
        client = _authenticate_client(state, client_id, secret)
        grant = form.get("grant_type", "")
        if grant == "authorization_code":
            body = _exchange_code(state, client, form)
        elif grant == "refresh_token":
            access_ttl, refresh_ttl = sessions.ttls(form)
            body = sessions.refresh(state, client, form.get("refresh_token", ""), access_ttl, refresh_ttl)
        elif grant == JWT_GRANT:
            raise oauth_error(400, "unsupported_grant_type", "JWT grant is not supported by the emulator", "OAU-250")
        else:
            raise oauth_error(400, "unsupported_grant_type", "Unsupported grant type", "OAU-250")
        response: Response = JSONResponse(body)
    except ApiError as err:
        response = err.to_response()
    response.headers.update(headers)
    return response


async def revoke(request: Request) -> Response:
    """Ends the whole session; an empty 200 even for unknown tokens (clients ignore errors)."""
    state = state_of(request)
    form = parse_form(await request.body())
    value = form.get("token", "")
    session = sessions.session_of_token(state, value)
    client_id = session.client_id if session is not None else form.get("client_id") or "*"
    verdict = state.limiter.check(session.extension_id if session else "*", client_id, "Auth")
    if not verdict.allowed:
        return rate_limited(headers=verdict.headers).to_response()
    if session is not None:
        state.end_session(session)
    return Response(status_code=200, headers=verdict.headers)


routes = [
    Route("/restapi/oauth/authorize", authorize, methods=["GET", "POST"]),
    Route("/restapi/oauth/token", token, methods=["POST"]),
    Route("/restapi/oauth/revoke", revoke, methods=["POST"]),
]

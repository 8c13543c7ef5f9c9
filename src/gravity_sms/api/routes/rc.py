"""RingCentral connection routes (api.md §9): link tokens, the connect pages, the OAuth callback,
status, phone numbers and disconnect.

Only translation between HTTP and `ConnectionService` lives here. The connect and callback pages
are opened by a browser without an API key; the link token (single use, hashed at rest) and the
OAuth `state` (hashed, with the PKCE verifier encrypted beside it) are what authorise them.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gravity_sms.api.auth import authenticated
from gravity_sms.api.deps import gateway
from gravity_sms.api.json import json_response
from gravity_sms.domain.connections import ConnectionService
from gravity_sms.domain.errors import ServiceUnavailable, ValidationFailed
from gravity_sms.domain.models import AuthContext

CONNECT_PATH = "/v1/rc/connect"
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}"
    "button{font-size:1rem;padding:.6rem 1.2rem;border:0;border-radius:.4rem;background:#0073ae;color:#fff;cursor:pointer}"
    ".err{color:#a40000}"
)


def _service(request: Request) -> ConnectionService:
    service = gateway(request).connections
    if service is None:
        raise ServiceUnavailable("RingCentral connections are not configured")
    return service


def _page(request: Request, title: str, body: str, status: int = 200) -> HTMLResponse:
    rc = urlsplit(gateway(request).settings.rc_server_url)
    rc_origin = f"{rc.scheme}://{rc.netloc}" if rc.netloc else ""
    csp = f"default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {rc_origin}".rstrip()
    doc = (
        f"<!doctype html><html lang=en><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style><h1>{html.escape(title)}</h1>{body}</html>"
    )
    return HTMLResponse(doc, status_code=status, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})


def _bad_link(request: Request) -> HTMLResponse:
    return _page(
        request,
        "Connect link not valid",
        "<p class=err>This connect link is missing, already used or expired. Ask for a new one.</p>",
        400,
    )


async def connect_token(request: Request, ctx: AuthContext) -> Response:
    token, _ = await _service(request).issue_connect_token(ctx.tenant_id, "connect")
    return json_response({"connectUrl": f"{CONNECT_PATH}?token={token}"})


async def invite_token(request: Request, ctx: AuthContext) -> Response:
    token, ttl = await _service(request).issue_connect_token(ctx.tenant_id, "invite")
    return json_response({"inviteUrl": f"{CONNECT_PATH}?token={token}", "expiresIn": ttl})


async def connect_page(request: Request) -> Response:
    """Does not consume the token: mail scanners prefetch links (api.md §9)."""
    token = request.query_params.get("token", "")
    if not token or not await _service(request).connect_token_valid(token):
        return _bad_link(request)
    form = (
        "<p>Connect your RingCentral account so this workspace can send and receive SMS with your numbers.</p>"
        f'<form method=post action="{CONNECT_PATH}">'
        f'<input type=hidden name=token value="{html.escape(token, quote=True)}">'
        "<button type=submit>Connect RingCentral</button></form>"
    )
    return _page(request, "Connect RingCentral", form)


async def connect_submit(request: Request) -> Response:
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[-1]
    try:
        url = await _service(request).begin(token)
    except ValidationFailed:
        return _bad_link(request)
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def callback(request: Request) -> Response:
    params = request.query_params
    as_json = params.get("format") == "json"
    refused = params.get("error")
    if refused is not None:
        # RingCentral's own refusal (access_denied, …): shown, never stored.
        if as_json:
            return json_response({"error": "RingCentral authorization failed"}, 400)
        detail = params.get("error_description") or refused
        return _page(
            request,
            "RingCentral authorization failed",
            f"<p class=err>RingCentral said: {html.escape(detail)} ({html.escape(refused)})</p>",
            400,
        )
    ext = await _service(request).complete(params.get("code"), params.get("state"))
    if as_json:
        return json_response({"ok": True})
    return _page(
        request,
        "RingCentral connected",
        f"<p>Extension {html.escape(ext.extension_id)} is connected. You can close this window.</p>",
    )


async def status(request: Request, ctx: AuthContext) -> Response:
    return json_response(await _service(request).status(ctx.tenant_id))


async def phone_numbers(request: Request, ctx: AuthContext) -> Response:
    numbers = await _service(request).phone_numbers(ctx.tenant_id)
    return json_response({"phoneNumbers": [n.public() for n in numbers]})


async def disconnect(request: Request, ctx: AuthContext) -> Response:
    await _service(request).disconnect(ctx.tenant_id)
    return json_response({"ok": True})


routes = [
    Route("/v1/rc/connect-token", authenticated(connect_token), methods=["POST"]),
    Route("/v1/rc/invite-token", authenticated(invite_token), methods=["POST"]),
    Route(CONNECT_PATH, connect_page, methods=["GET"]),
    Route(CONNECT_PATH, connect_submit, methods=["POST"]),
    Route("/v1/rc/callback", callback, methods=["GET"]),
    Route("/v1/rc/status", authenticated(status), methods=["GET"]),
    Route("/v1/rc/phone-numbers", authenticated(phone_numbers), methods=["GET"]),
    Route("/v1/rc/disconnect", authenticated(disconnect), methods=["POST"]),
]

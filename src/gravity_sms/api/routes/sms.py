"""`POST /v1/sms/send` (api.md §5): validate, store `queued` durably, answer 202.

The hot path of the gateway (quality.md B1): a pure-ASGI endpoint (no `Request`/`Response`
objects, no schema library), one JSON parse, the domain's validation, and one await on the
group-commit writer — the 202 goes out only after the commit that holds the message.
`Idempotency-Key` repeats answer the original 202 (marked with `Idempotent-Replayed: true`).
`GatewayMiddleware` dispatches here directly; the Starlette route below serves the same endpoint
(method matching, the OpenAPI listing) when a request takes the ordinary way.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from gravity_sms.api.auth import Authenticator, Presented
from gravity_sms.api.exchange import encode_headers, header, read_body, respond, respond_error
from gravity_sms.api.json import parse_json_object
from gravity_sms.container import Gateway
from gravity_sms.domain.errors import GravityError

PATH = "/v1/sms/send"
_REPLAYED = (b"idempotent-replayed", b"true")


class SendEndpoint:
    """The ASGI app of `POST /v1/sms/send`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope["app"].state
        gw: Gateway = state.gateway
        auth: Authenticator = state.auth
        service = gw.outbound
        assert service is not None, "outbound service not wired"
        rate_headers: dict[str, str] = {}
        try:
            presented = Presented.from_scope(scope, auth.trust_proxy)
            ctx = await auth.admit(presented.ip, presented.key, rate_headers)
            data = parse_json_object(await read_body(receive))
            result = await service.send(ctx, data, header(scope, b"idempotency-key"))
        except GravityError as exc:
            await respond_error(send, exc, rate_headers)
            return
        headers = encode_headers(rate_headers)
        if result.replayed:
            headers.append(_REPLAYED)
        body = b'{"messageId":"' + result.message_id.encode() + b'","status":"queued"}'
        await respond(send, 202, body, headers)


endpoint = SendEndpoint()
routes = [Route(PATH, endpoint, methods=["POST"])]
hot_routes = {("POST", PATH): endpoint}

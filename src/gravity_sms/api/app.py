"""The app factory: routes, the conventions middleware, the error table, and the lifespan hook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from gravity_sms.api import ws
from gravity_sms.api.auth import Authenticator
from gravity_sms.api.errors import EXCEPTION_HANDLERS, error_response
from gravity_sms.api.middleware import BodyTooLarge, GatewayMiddleware
from gravity_sms.api.routes import apps, deliveries, docs, health, messages, rc, sms, tenants, triggers, webhooks
from gravity_sms.container import Gateway

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[Any]]


def all_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for module in (health, docs, tenants, apps, sms, webhooks, messages, deliveries, triggers, rc):
        routes.extend(module.routes)
    routes.extend(ws.routes)  # GET /ws and POST /v1/ws/token
    return routes


def hot_routes() -> dict[tuple[str, str], ASGIApp]:
    """The exact (method, path) pairs `GatewayMiddleware` dispatches without Starlette's stack."""
    return {**sms.hot_routes, **webhooks.hot_routes}


class GatewayApp(Starlette):
    """Starlette with `GatewayMiddleware` as the outermost layer, in front of Starlette's own
    error layer, so the hot routes it dispatches directly never enter Starlette's stack."""

    def __init__(self, *, conventions: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._conventions = conventions
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self._conventions(super().build_middleware_stack())


async def _internal_error(request: Request, exc: Exception) -> Response:
    # Starlette's last-resort layer answers in the contract's shape, then re-raises: the
    # GatewayMiddleware outside it logs the error with the request id (and answers nothing more).
    if isinstance(exc, BodyTooLarge):
        return error_response("Payload too large", 413)
    return error_response("Internal server error", 500)


def create_app(gw: Gateway, *, lifespan: Lifespan | None = None) -> Starlette:
    @asynccontextmanager
    async def _lifespan(app: Starlette) -> AsyncIterator[None]:
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield
        await app.state.auth.drain()

    def conventions(inner: ASGIApp) -> ASGIApp:
        return GatewayMiddleware(
            inner, production=gw.settings.is_production, metrics=gw.metrics, hot_routes=hot_routes()
        )

    app = GatewayApp(
        conventions=conventions,
        routes=all_routes(),
        exception_handlers={**EXCEPTION_HANDLERS, Exception: _internal_error},
        lifespan=_lifespan,
    )
    app.state.gateway = gw
    app.state.auth = Authenticator(
        apps=gw.store.apps,
        key_cache=gw.key_cache,
        limiter=gw.limiter,
        box=gw.box,
        clock=gw.clock,
        trust_proxy=gw.settings.trust_proxy,
        rate_limit_app=gw.settings.rate_limit_app,
        rate_limit_admin=gw.settings.rate_limit_admin,
    )
    return app

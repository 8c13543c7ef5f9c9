"""The app factory: routes, the conventions middleware, the error table, and the lifespan hook."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from gravity_sms.api import ws
from gravity_sms.api.auth import Authenticator
from gravity_sms.api.errors import EXCEPTION_HANDLERS
from gravity_sms.api.middleware import GatewayMiddleware
from gravity_sms.api.routes import apps, deliveries, docs, health, messages, rc, sms, tenants, triggers, webhooks
from gravity_sms.container import Gateway

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[Any]]


def all_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for module in (health, docs, tenants, apps, sms, webhooks, messages, deliveries, triggers, rc):
        routes.extend(module.routes)
    routes.extend(ws.routes)  # GET /ws and POST /v1/ws/token
    return routes


def create_app(gw: Gateway, *, lifespan: Lifespan | None = None) -> Starlette:
    @asynccontextmanager
    async def _lifespan(app: Starlette) -> AsyncIterator[None]:
        if lifespan is None:
            yield
        else:
            async with lifespan(app):
                yield
        await app.state.auth.drain()

    app = Starlette(
        routes=all_routes(),
        middleware=[Middleware(GatewayMiddleware, production=gw.settings.is_production, metrics=gw.metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
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

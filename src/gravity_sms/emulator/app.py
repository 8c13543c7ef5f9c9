"""The emulator's app factory: routes, middleware, lifespan (the background ticker).

Owns assembly only; `app.state.emulator` is the EmulatorState tests may inspect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gravity_sms.emulator import control, identity, messages, oauth, sms, subscriptions
from gravity_sms.emulator.config import EmulatorConfig
from gravity_sms.emulator.faults import FaultMiddleware
from gravity_sms.emulator.recorder import RecorderMiddleware
from gravity_sms.emulator.state import EmulatorState
from gravity_sms.emulator.ticker import run_ticker


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = f"AGW-{exc.status_code}"
    message = "Resource not found" if exc.status_code == 404 else str(exc.detail)
    body = {"errorCode": code, "message": message, "errors": [{"errorCode": code, "message": message}]}
    return JSONResponse(body, status_code=exc.status_code)


def create_emulator_app(config: EmulatorConfig | None = None) -> Starlette:
    config = config or EmulatorConfig()
    state = EmulatorState(config)
    control.reset_state(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if config.tick_seconds:
            task = asyncio.create_task(run_ticker(state, config.tick_seconds), name="emulator-ticker")
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            *oauth.routes,
            *identity.routes,
            *subscriptions.routes,
            *messages.routes,
            *sms.routes,
            *control.routes,
        ],
        middleware=[
            Middleware(RecorderMiddleware, state=state),
            Middleware(FaultMiddleware, book=state.faults),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.emulator = state
    return app

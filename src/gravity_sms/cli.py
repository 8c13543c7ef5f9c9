"""`gravity-sms`: the command line (operations.md §3). Every command reads the same settings,
prints JSON where it reports data, and fails with one line and a non-zero exit."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

import orjson

from gravity_sms.domain.errors import GravityError
from gravity_sms.settings import ConfigError, Settings, load_settings


def _run_server(coro: Coroutine[Any, Any, None]) -> None:
    """Long-running servers run on uvloop when it is installed (it is, with uvicorn[standard]).

    uvicorn only picks uvloop in `Server.run()`; the gateway awaits `Server.serve()` inside its
    own loop, so the loop is chosen here (docs/benchmarks.md: 15-35 % on every HTTP figure)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(coro)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(coro)


def _print(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


async def _with_gateway(settings: Settings, fn: Callable[[Any], Awaitable[Any]]) -> Any:
    from gravity_sms.runtime import build_gateway, prepare_database

    gw = await build_gateway(settings)
    try:
        await prepare_database(gw)
        return await fn(gw)
    finally:
        await gw.store.close()


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from gravity_sms.runtime import serve

    _run_server(serve(settings, workers=not args.no_workers))


def _cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    from gravity_sms.runtime import serve

    _run_server(serve(settings, workers=True, api=False))


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> None:
    from gravity_sms.store.migrate import migrate_sync

    migrate_sync(settings.effective_database_url)
    _print({"ok": True, "database": settings.effective_database_url.split("@")[-1]})


def _cmd_tenant(args: argparse.Namespace, settings: Settings) -> None:
    async def run(gw: Any) -> Any:
        if args.tenant_cmd == "create":
            return (await gw.tenants.create(args.name)).public()
        if args.tenant_cmd == "list":
            return {"tenants": [t.public() for t in await gw.tenants.list_tenants()]}
        return (await gw.tenants.update(args.tenant_id, {"status": args.status})).public()

    _print(asyncio.run(_with_gateway(settings, run)))


def _cmd_app(args: argparse.Namespace, settings: Settings) -> None:
    async def run(gw: Any) -> Any:
        if args.app_cmd == "create":
            body = {
                "name": args.name,
                "tenantId": args.tenant,
                "role": args.role,
                "webhookUrl": args.webhook_url,
            }
            return await gw.apps.register(None, body)
        if args.app_cmd == "list":
            return {"apps": [a.public() for a in await gw.apps.list_apps(None, args.tenant)]}
        return await gw.apps.rotate_key(None, args.app_id)

    _print(asyncio.run(_with_gateway(settings, run)))


def _cmd_emulator(args: argparse.Namespace, settings: Settings) -> None:
    from gravity_sms.emulator import serve_emulator

    _run_server(serve_emulator(args.host, args.port, args.seed))


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> None:
    from gravity_sms.demo import run_demo

    _run_server(run_demo(settings))


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), like every other failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gravity-sms", description="Gravity SMS gateway for RingCentral.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("serve", help="run the API, WebSocket and background workers in one process")
    p.add_argument("--no-workers", action="store_true", help="API only (run `gravity-sms worker` separately)")
    p.set_defaults(func=_cmd_serve)
    sub.add_parser("worker", help="run the background workers only").set_defaults(func=_cmd_worker)
    sub.add_parser("migrate", help="apply database migrations (Alembic)").set_defaults(func=_cmd_migrate)

    tenant = sub.add_parser("tenant", help="manage tenants")
    tsub = tenant.add_subparsers(dest="tenant_cmd", required=True)
    tc = tsub.add_parser("create", help="create a tenant")
    tc.add_argument("--name", required=True)
    tsub.add_parser("list", help="list tenants")
    ts = tsub.add_parser("set-status", help="set a tenant's status")
    ts.add_argument("tenant_id")
    ts.add_argument("status", choices=["active", "suspended", "inactive"])
    tenant.set_defaults(func=_cmd_tenant)

    app = sub.add_parser("app", help="manage apps and API keys")
    asub = app.add_subparsers(dest="app_cmd", required=True)
    ac = asub.add_parser("create", help="register an app (prints its API key and webhook secret once)")
    ac.add_argument("--tenant", required=True)
    ac.add_argument("--name", required=True)
    ac.add_argument("--role", choices=["app", "admin"], default="app")
    ac.add_argument("--webhook-url", default=None)
    al = asub.add_parser("list", help="list apps")
    al.add_argument("--tenant", default=None)
    ar = asub.add_parser("rotate-key", help="issue a new API key; the old one stops working at once")
    ar.add_argument("app_id")
    app.set_defaults(func=_cmd_app)

    em = sub.add_parser("emulator", help="run the RingCentral emulator alone")
    em.add_argument("--host", default="127.0.0.1")
    em.add_argument("--port", type=int, default=9090)
    em.add_argument("--seed", default=None, help="JSON seed file (accounts, extensions, numbers, clients)")
    em.set_defaults(func=_cmd_emulator)

    sub.add_parser("demo", help="gateway + emulator on SQLite with a connected demo tenant (`make run`)").set_defaults(
        func=_cmd_demo
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        args.func(args, settings)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            sys.stderr.write(f"gravity-sms: {line}\n")
        return 2
    except GravityError as exc:
        sys.stderr.write(f"gravity-sms: {exc.message}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line, never a traceback
        sys.stderr.write(f"gravity-sms: {type(exc).__name__}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

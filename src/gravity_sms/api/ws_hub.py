"""`ConnectionHub`: one node's WebSocket subscribers and the fan-out of gateway events to them.

The hub owns ONE broker subscription per node (channel `gravity.events`; Redis pub/sub in a cluster)
and indexes the node's authenticated connections by tenant, by app, and admins. Each event is
serialised once per fan-out, JSON and WebSocket frame alike, and handed to every target without
awaiting on any of them, so one slow client never delays another (in slices of `slice_size`
targets with a yield to the event loop in between, so HTTP keeps being served):

- on the gateway's server (`api.ws.FanoutProtocol`) a connection has a direct `write`: the frame
  bytes go straight to its socket; the send buffer is the transport's, bounded by `buffer_bytes`;
- otherwise (another ASGI server) a writer task per connection drains a queue of `buffer` frames.

A client whose buffer overflows is closed with 1013. Closes always go through the writer task.

It also sends the `{"type": "ping"}` frame every `ping_interval` seconds, and on the same tick
closes the connections of tenants that are no longer active (a suspension reaches live sockets
within one ping interval; new connections are refused at auth at once).

It knows nothing of Starlette or uvicorn: a connection is a pair of send/close callables plus the
optional direct `write` (`gravity_sms.api.ws` adapts the ASGI WebSocket). It must not read
messages itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from itertools import chain
from typing import Any, Final

import orjson
from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode

from gravity_sms.domain.ports import Broker
from gravity_sms.domain.tenants import TenantStore
from gravity_sms.telemetry import Metrics, get_logger

EVENTS_CHANNEL = "gravity.events"
PING_FRAME = '{"type":"ping"}'
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
TENANT_INACTIVE: Final = "Tenant suspended or inactive"

log = get_logger("gravity.ws")


class _Close:
    """Sentinel placed in a send buffer: close the socket with `code` after what precedes it."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason


def encode_text_frame(text: str) -> bytes:
    """One complete server-to-client text frame (unmasked, no extension), by `websockets`' codec."""
    return WsFrame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


class Outgoing:
    """One message for many connections: its text, and its wire frame encoded on first use."""

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        if self._wire is None:
            self._wire = encode_text_frame(self.text)
        return self._wire


Frame = str | _Close
SendText = Callable[[str], Awaitable[None]]
CloseSocket = Callable[[int, str], Awaitable[None]]
WriteFrame = Callable[[bytes], int]
"""Write one encoded frame now; returns the bytes still buffered for the socket, -1 if closed."""


class Subscriber:
    """One authenticated connection: who it is, and its bounded send buffer."""

    __slots__ = ("app_id", "buffer_bytes", "closing", "is_admin", "queue", "tenant_id", "write", "writer")

    def __init__(
        self,
        app_id: str,
        tenant_id: str,
        is_admin: bool,
        buffer: int,
        write: WriteFrame | None = None,
        buffer_bytes: int = 0,
    ) -> None:
        self.app_id = app_id
        self.tenant_id = tenant_id
        self.is_admin = is_admin
        self.queue: asyncio.Queue[Frame] = asyncio.Queue(buffer)
        self.write = write
        self.buffer_bytes = buffer_bytes
        self.closing = False
        self.writer: asyncio.Task[None] | None = None

    def offer(self, out: Outgoing) -> bool:
        """Send or queue a frame without waiting; False when the buffer overflowed (a slow reader)."""
        if self.closing:
            return True
        if self.write is not None:
            # A closed socket (-1) is not an overflow: its endpoint is already unregistering it.
            return self.write(out.wire) <= self.buffer_bytes
        try:
            self.queue.put_nowait(out.text)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Ask the writer to close after the frames already queued (or, on overflow, at once)."""
        if self.closing:
            return
        self.closing = True
        if self.queue.full():
            # The reader is not keeping up: what is queued would never be read in time anyway.
            while not self.queue.empty():
                self.queue.get_nowait()
        self.queue.put_nowait(_Close(code, reason))


class ConnectionHub:
    def __init__(
        self,
        broker: Broker,
        tenants: TenantStore,
        metrics: Metrics,
        *,
        buffer: int = 256,
        buffer_bytes: int = 256 * 1024,
        ping_interval: float = 30.0,
        auth_timeout: float = 10.0,
        close_grace: float = 10.0,
        slice_size: int = 500,
    ) -> None:
        self.broker = broker
        self.tenants = tenants
        self.metrics = metrics
        self.buffer = buffer
        self.buffer_bytes = buffer_bytes
        self.ping_interval = ping_interval
        self.auth_timeout = auth_timeout
        self.close_grace = close_grace
        self.slice_size = slice_size
        self._all: set[Subscriber] = set()
        self._by_tenant: dict[str, set[Subscriber]] = defaultdict(set)
        self._by_app: dict[str, set[Subscriber]] = defaultdict(set)
        self._admins: set[Subscriber] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------------
    async def ready(self, wait: float = 2.0) -> None:
        """Start the node's subscription and ticker on first use; wait (bounded) until live."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._pump(), name="ws-hub-pump"),
                asyncio.create_task(self._tick(), name="ws-hub-ticker"),
            ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), wait)

    @property
    def accepting(self) -> bool:
        return not self._closed

    async def close(self, code: int = CLOSE_GOING_AWAY, deadline: float = 5.0) -> None:
        """Graceful shutdown: close every connection with `code` (1001), wait, stop the tasks."""
        self._closed = True
        writers = [s.writer for s in self._all if s.writer is not None]
        for sub in list(self._all):
            sub.close(code, "Server shutting down")
        if writers:
            await asyncio.wait(writers, timeout=deadline)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # --- connections ---------------------------------------------------------------------------
    def subscriber(self, app_id: str, tenant_id: str, is_admin: bool, write: WriteFrame | None = None) -> Subscriber:
        """A connection's subscription; with `write`, frames go straight to its socket."""
        return Subscriber(app_id, tenant_id, is_admin, self.buffer, write, self.buffer_bytes)

    def register(self, sub: Subscriber) -> None:
        self._all.add(sub)
        if sub.is_admin:
            self._admins.add(sub)
        else:
            self._by_tenant[sub.tenant_id].add(sub)
            self._by_app[sub.app_id].add(sub)
        self.metrics.ws_connections.inc()

    def unregister(self, sub: Subscriber) -> None:
        if sub not in self._all:
            return
        self._all.discard(sub)
        self._admins.discard(sub)
        for index, key in ((self._by_tenant, sub.tenant_id), (self._by_app, sub.app_id)):
            members = index.get(key)
            if members is not None:
                members.discard(sub)
                if not members:
                    del index[key]
        self.metrics.ws_connections.dec()

    @property
    def connections(self) -> int:
        return len(self._all)

    async def serve(self, sub: Subscriber, send_text: SendText, close: CloseSocket) -> None:
        """Write `sub`'s queue to its socket until a close frame (or the socket fails). With a
        direct `write` only the close ever arrives here."""
        while True:
            frame = await sub.queue.get()
            if isinstance(frame, _Close):
                await close(frame.code, frame.reason)
                return
            await send_text(frame)

    # --- fan-out -------------------------------------------------------------------------------
    def targets(self, event: dict[str, Any]) -> Iterable[Subscriber]:
        kind = event.get("type")
        if kind == "sms_inbound":
            scoped = self._by_tenant.get(str(event.get("tenantId")), ())
        elif kind == "sms_status":
            scoped = self._by_app.get(str(event.get("appId")), ())
        else:
            return ()
        return chain(tuple(scoped), tuple(self._admins))

    async def dispatch(self, event: dict[str, Any]) -> int:
        """Fan one event out to this node's connections; returns how many got it."""
        targets = tuple(self.targets(event))
        if not targets:
            return 0
        return await self._deliver(targets, Outgoing(orjson.dumps(event).decode()))  # once per fan-out

    async def broadcast(self, frame: str) -> None:
        await self._deliver(tuple(self._all), Outgoing(frame))

    async def _deliver(self, targets: tuple[Subscriber, ...], out: Outgoing) -> int:
        """Offer `out` to every target, yielding to the loop between slices of `slice_size`: a
        direct write is ~10 µs, so 10,000 sockets would otherwise hold the loop for ~0.1 s and
        every HTTP request on the node with it."""
        sent = 0
        for start in range(0, len(targets), self.slice_size):
            if start:
                await asyncio.sleep(0)
            for sub in targets[start : start + self.slice_size]:
                if sub.offer(out):
                    sent += 1
                else:
                    self._overflow(sub)
        return sent

    def _overflow(self, sub: Subscriber) -> None:
        log.warning("ws.slow_reader_closed", app_id=sub.app_id, tenant_id=sub.tenant_id)
        sub.close(CLOSE_TRY_AGAIN, "Send buffer overflow")
        # If the socket cannot even take the close frame in time, give up on it.
        writer = sub.writer
        if writer is not None:
            asyncio.get_running_loop().call_later(self.close_grace, writer.cancel)

    async def _pump(self) -> None:
        while True:
            try:
                async with self.broker.subscribe(EVENTS_CHANNEL) as events:
                    self._subscribed.set()
                    async for event in events:
                        try:
                            await self.dispatch(event)
                        except Exception:
                            log.exception("ws.dispatch_failed", type=event.get("type"))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ws.subscription_failed")
                self._subscribed.clear()
                await asyncio.sleep(1.0)

    # --- ping and tenant status ----------------------------------------------------------------
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self.ping_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ws.ping_round_failed")

    async def ping_round(self) -> None:
        """One ping to every connection, then close those whose tenant is no longer active."""
        await self.broadcast(PING_FRAME)
        await self.close_inactive_tenants()

    async def close_inactive_tenants(self) -> int:
        tenant_ids = {sub.tenant_id for sub in self._all}
        inactive: set[str] = set()
        for tenant_id in tenant_ids:
            tenant = await self.tenants.get(tenant_id)
            if tenant is None or tenant.status != "active":
                inactive.add(tenant_id)
        closed = 0
        for sub in tuple(self._all):
            if sub.tenant_id in inactive:
                sub.close(CLOSE_POLICY, TENANT_INACTIVE)
                closed += 1
        if closed:
            log.info("ws.tenant_inactive_closed", connections=closed, tenants=len(inactive))
        return closed

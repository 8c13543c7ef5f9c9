"""Group commit: concurrent callers share one write transaction, each awaits its own result.

A caller's item joins the pending list; while fewer than `parallel` flushes run, the pending
items (up to `max_batch`) go to `flush` as one batch. Callers arriving during a flush wait for the
next one, so batches grow with the load and the cost of a commit is shared by everyone in it.
`flush` answers one result (or exception) per item, in order; a caller's future is settled only
after the flush returned, i.e. after the commit that holds its item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, flush: Flush[T, R], *, max_batch: int = 256, parallel: int = 1, name: str = "group-commit"):
        self._flush_fn = flush
        self.max_batch = max_batch
        self.parallel = parallel
        self.name = name
        self._items: list[T] = []
        self._futures: list[asyncio.Future[R]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._items.append(item)
        self._futures.append(future)
        if len(self._flushes) < self.parallel:
            self._start()
        # A caller that goes away cancels only its own future, never the flush others share.
        return await future

    def _start(self) -> None:
        while self._items and len(self._flushes) < self.parallel:
            n = self.max_batch
            items, self._items = self._items[:n], self._items[n:]
            futures, self._futures = self._futures[:n], self._futures[n:]
            task = asyncio.get_running_loop().create_task(self._run(items, futures), name=self.name)
            self._flushes.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._flushes.discard(task)
        self._start()

    async def _run(self, items: list[T], futures: list[asyncio.Future[R]]) -> None:
        try:
            results = await self._flush_fn(items)
        except BaseException as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("flush cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Wait for flushes in flight (callers are awaiting them)."""
        while self._flushes:
            await asyncio.gather(*list(self._flushes), return_exceptions=True)

"""Requests that arrive together are served by one batched call.

A multiplexed producer starts hundreds of clusters at once, and each would otherwise
make its own Kafka round trips at start: an admin client that fetches the metadata of
every topic on the broker to create one topic, a metadata refresh to learn its
partitions, a consumer (with its own bootstrap) to read it back. Those costs grow with
the broker's topic count, so per cluster they made the start quadratic. Through a
``Coalescer`` the clusters that ask within ``window_s`` share one call instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from producers.errors import ProducerError

K = TypeVar("K")
V = TypeVar("V")


class Coalescer(Generic[K, V]):
    """``await request(item)`` returns ``run(batch)[i]`` for the item's index ``i`` in
    the batch of requests made within ``window_s`` of the first one. If ``run`` raises,
    every request of the batch raises the same error (callers retry on their own)."""

    def __init__(
        self,
        run: Callable[[list[K]], Awaitable[Sequence[V]]],
        window_s: float = 0.05,
        max_batch: int = 1_000,
    ) -> None:
        self._run = run
        self._window_s = window_s
        self._max_batch = max_batch
        self._pending: list[tuple[K, asyncio.Future[V]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  #: calls of ``run`` so far (tests, logs)

    async def request(self, item: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._flush_now()
        elif self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return await future

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._window_s)
        self._flusher = None
        self._flush_now()

    def _flush_now(self) -> None:
        if self._flusher is not None and self._flusher is not asyncio.current_task():
            self._flusher.cancel()
            self._flusher = None
        batch, self._pending = self._pending, []
        batch = [(item, f) for item, f in batch if not f.done()]  # cancelled waiters
        if batch:
            task = asyncio.create_task(self._serve(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _serve(self, batch: list[tuple[K, asyncio.Future[V]]]) -> None:
        self.batches += 1
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to every waiter, which decides
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if len(results) != len(batch):
            error = ProducerError(f"batch of {len(batch)} answered with {len(results)} results")
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Cancel what is waiting or running (at shutdown)."""
        tasks = [t for t in (self._flusher, *self._running) if t is not None]
        self._flusher = None
        for _, future in self._pending:
            future.cancel()
        self._pending = []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

"""The running service: the store secondary, kept caught up, plus the change-feed hub.

RocksDB secondaries see the writer's changes only when they catch up (replay the
writer's new WAL and MANIFEST entries), so a background task does that as soon as the
writer appends to either (inotify, ``catch_up_on_write``) and at least every
``catch_up_interval_s``, and pumps the new changes to feed clients; a request that
finds the view staler than ``max_staleness_s`` catches up first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from plumbing.dirwatch import DirectoryWatch, is_rocksdb_commit_file
from query.auth import TokenTable
from query.config import QueryConfig
from query.feed import FeedHub
from query.tokens import TokenSigner
from query.view import ScopedView
from store import ViewReader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CatchUpStats:
    count: int  #: catch-ups done since start
    last_monotonic: float  #: time.monotonic() of the latest one


class QueryService:
    """Owns the reader; create with :meth:`open`, then :meth:`start` inside the event loop."""

    def __init__(self, config: QueryConfig, tokens: TokenTable, reader: ViewReader) -> None:
        self.config = config
        self.tokens = tokens
        self.reader = reader
        self.view = ScopedView(
            reader,
            TokenSigner(config.continue_secret),
            config.store_options.history_retention_s,
            config.max_scan_per_page,
        )
        self.hub = FeedHub(reader, config.feed_batch, config.feed_queue_max)
        self._last_catch_up = time.monotonic()
        self._catch_ups = 0
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._watch: DirectoryWatch | None = None
        self._written: asyncio.Event | None = None  #: set when the writer commits

    @classmethod
    def open(cls, config: QueryConfig, tokens: TokenTable) -> QueryService:
        reader = ViewReader.open(config.store_path, config.secondary_path, config.store_options)
        reader.catch_up()
        return cls(config, tokens, reader)

    @property
    def stats(self) -> CatchUpStats:
        return CatchUpStats(self._catch_ups, self._last_catch_up)

    def catch_up(self) -> None:
        """One pass: replay the writer's new data, then hand new changes to feed clients."""
        self.reader.catch_up()
        self._last_catch_up = time.monotonic()
        self._catch_ups += 1
        self.hub.pump()

    def ensure_fresh(self) -> None:
        """Catch up inline when nothing else does (no background task: tests, tools).

        With the background task running, a request never waits for a catch-up: under
        write load one can take hundreds of milliseconds, and the task already bounds
        staleness by its interval plus that time."""
        if self._task is not None:
            return
        if time.monotonic() - self._last_catch_up > self.config.max_staleness_s:
            self.catch_up()

    async def _catch_up_off_loop(self) -> None:
        """Replay in a worker thread (RocksDB releases the GIL; reads may run meanwhile),
        then hand the new changes to feed clients on the loop."""
        future = asyncio.get_running_loop().run_in_executor(None, self.reader.catch_up)
        self._inflight = future
        await asyncio.shield(future)  # cancelling the task must not orphan the thread
        self._last_catch_up = time.monotonic()
        self._catch_ups += 1
        self.hub.pump()

    @property
    def watching_writes(self) -> bool:
        """True while catch-ups follow the writer's commits (not only the interval)."""
        return self._written is not None

    async def _until_worth_catching_up(self) -> None:
        """Until the writer has committed (if noticed) or the interval has passed, and
        at least ``min_catch_up_gap_s`` after the last catch-up."""
        written = self._written
        if written is None:
            await asyncio.sleep(self.config.catch_up_interval_s)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(written.wait(), self.config.catch_up_interval_s)
        written.clear()  # a commit from now on asks for the next catch-up
        gap = self._last_catch_up + self.config.min_catch_up_gap_s - time.monotonic()
        if gap > 0:
            await asyncio.sleep(gap)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._until_worth_catching_up()
            try:
                await self._catch_up_off_loop()
                failures = 0
            except Exception:  # keep serving the last good state; say so in the log
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    log.exception("catch-up with the store writer failed (%d in a row)", failures)

    async def start(self) -> None:
        if self.config.catch_up_on_write and self._watch is None:
            self._watch = DirectoryWatch.open(self.config.store_path, is_rocksdb_commit_file)
            if self._watch is not None:
                written = self._written = asyncio.Event()
                self._watch.attach(asyncio.get_running_loop(), written.set)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="kubedelta-query-catch-up")

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch, self._written = None, None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._inflight is not None:
            # A catch-up still running in its thread must end before the reader closes.
            with contextlib.suppress(Exception):
                await self._inflight
            self._inflight = None

    def close(self) -> None:
        self.reader.close()

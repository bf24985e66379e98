"""The change feed as Server-Sent Events: formatting (pure) and the fan-out hub.

One pump reads new changes from the store after each catch-up and hands them to
every connected client's queue; each client filters by its own query and scope.
A client resumes after a disconnect from the last event id it saw
(``Last-Event-ID`` or ``?from=``): it first reads the backlog from the store, then
switches to its live queue, skipping what the backlog already delivered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import orjson

from deltas.model import Op
from query.auth import Scope
from query.errors import HistoryUnavailableError, QueryError
from query.selectors import Selector
from store.reads import ViewReads
from store.values import Change

log = logging.getLogger(__name__)

#: Changes rendered per chunk written: big enough to amortize the write, small enough
#: (a few ms) that GETs on the same event loop are not held up behind a burst.
CHUNK_CHANGES = 256


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which changes one client receives."""

    scope: Scope
    clusters: frozenset[str] | None  #: None: every cluster in scope
    group: str | None
    kind: str | None
    namespace: str | None
    name_prefix: str
    selector: Selector

    def admits_key(self, change: Change) -> bool:
        """Everything but the selector (which needs the object's labels)."""
        if not self.scope.allows(change.cluster, change.namespace):
            return False
        if self.clusters is not None and change.cluster not in self.clusters:
            return False
        if self.group is not None and change.group != self.group:
            return False
        if self.kind is not None and change.kind != self.kind:
            return False
        if self.namespace is not None and change.namespace != self.namespace:
            return False
        return change.name.startswith(self.name_prefix)


def sse_event(event_id: int, event: str, data: bytes) -> bytes:
    """One SSE frame. JSON from orjson has no raw newlines; split defensively anyway."""
    lines = data.split(b"\n")
    body = b"".join(b"data: " + line + b"\n" for line in lines)
    return b"id: " + str(event_id).encode() + b"\nevent: " + event.encode() + b"\n" + body + b"\n"


def change_event(change: Change, body: bytes | None) -> bytes:
    """The SSE frame of one change; ``body`` is the stored object JSON (None for deletes)."""
    head = orjson.dumps(
        {
            "position": change.position,
            "type": change.op.name,  # UPSERT or DELETE
            "cluster": change.cluster,
            "group": change.group,
            "kind": change.kind,
            "namespace": change.namespace,
            "name": change.name,
            "resourceVersion": change.resource_version,
            "eventTimeMs": change.event_time_ms,
        }
    )
    data = head[:-1] + b',"object":' + (body if body is not None else b"null") + b"}"
    return sse_event(change.position, "change", data)


def render(reader: ViewReads, feed_filter: FeedFilter, change: Change) -> bytes | None:
    """The frame for ``change`` if the filter admits it, else None.

    An upsert carries the version it announces: the current one, or the kept history's
    copy when the object changed again since (without history: the newer current
    version, whose own change follows). A deleted object's labels come from the
    version just before the delete; when that is unknown (no history) a delete passes
    a label selector: over-delivery, never a leak, as the scope check needs no labels.
    """
    if not feed_filter.admits_key(change):
        return None
    key = (change.cluster, change.group, change.kind, change.namespace, change.name)
    if change.op is Op.DELETE:
        if not feed_filter.selector.empty:
            before = reader.get_at(*key, max(change.event_time_ms - 1, 0))
            if before is not None and not feed_filter.selector.matches(before.labels):
                return None
        return change_event(change, None)
    entry = reader.get_entry(*key)
    if entry is None or entry.resource_version != change.resource_version:
        past = reader.get_at(*key, change.event_time_ms)
        if past is not None and past.resource_version == change.resource_version:
            entry = past
    if entry is None:
        return None  # gone and no history: its DELETE change follows
    if not feed_filter.selector.empty and not feed_filter.selector.matches(entry.labels):
        return None
    return change_event(change, entry.body)


class FeedOverflowError(QueryError):
    """A client fell too far behind; it is disconnected and resumes from its last id."""


class FeedHub:
    """Fans changes out to connected clients. Runs on the event loop, never blocks long."""

    def __init__(self, reader: ViewReads, batch: int, queue_max: int) -> None:
        self._reader = reader
        self._batch = batch
        self._queue_max = queue_max
        #: Each client's queue holds batches of changes (one per pump step): one queue
        #: operation per batch, not per change. None ends the stream (overflow).
        self._subscribers: dict[asyncio.Queue[list[Change] | None], list[int]] = {}
        #: Last position handed to subscribers; clients subscribing now get what follows.
        self.head = reader.feed_bounds()[1]

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def pump(self) -> int:
        """Read changes after ``head`` (call after each catch-up); return how many were
        handed out. With no client connected, ``head`` moves to the end of the feed
        without reading it: decoding every change for nobody was ~20 % of the query
        service's CPU during an initial sync (docs/benchmarks.md)."""
        if not self._subscribers:
            self.head = max(self.head, self._reader.feed_bounds()[1])
            return 0
        total = 0
        while True:
            changes = self._reader.changes_since(self.head, self._batch)
            if not changes:
                return total
            for queue, pending in list(self._subscribers.items()):
                if pending[0] + len(changes) > self._queue_max:
                    # Slow client: end its stream; it resumes from its last event id.
                    del self._subscribers[queue]
                    queue.put_nowait(None)
                    continue
                pending[0] += len(changes)
                queue.put_nowait(changes)
            self.head = changes[-1].position
            total += len(changes)
            if len(changes) < self._batch:
                return total

    def start_position(self, requested: int | None) -> int:
        """Validate a resume position; None means "from now"."""
        if requested is None:
            return self.head
        first, last = self._reader.feed_bounds()
        if requested > max(last, self.head):
            raise QueryError(
                f"feed position {requested} is ahead of the feed (latest is {max(last, self.head)})"
            )
        if requested < first - 1:
            raise HistoryUnavailableError(
                f"feed position {requested} is older than the kept change feed (oldest kept is"
                f" {first}); LIST again and resume from the position of the newest change"
            )
        return requested

    def _chunks(
        self, feed_filter: FeedFilter, changes: list[Change], after: int
    ) -> Iterator[bytes]:
        """The frames of the admitted changes after position ``after``, joined into
        chunks of at most CHUNK_CHANGES changes: one socket write per chunk, and the
        event loop gets a turn between chunks (rendering reads the store)."""
        for start in range(0, len(changes), CHUNK_CHANGES):
            frames = []
            for change in changes[start : start + CHUNK_CHANGES]:
                if change.position <= after:
                    continue
                frame = render(self._reader, feed_filter, change)
                if frame is not None:
                    frames.append(frame)
            if frames:
                yield b"".join(frames)

    async def stream(
        self,
        feed_filter: FeedFilter,
        start: int,
        heartbeat_s: float,
        timeout_s: float | None,
        ensure_fresh: Callable[[], None],
    ) -> AsyncIterator[bytes]:
        """SSE frames for changes after ``start``: backlog from the store, then live."""
        queue: asyncio.Queue[list[Change] | None] = asyncio.Queue()
        pending = [0]
        self._subscribers[queue] = pending
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s if timeout_s is not None else None
        try:
            yield b": kubedelta change feed; events carry the object JSON\n\n"
            position = start
            # Backlog: everything between ``start`` and what the hub had published when we
            # subscribed. Later changes arrive through the queue.
            ensure_fresh()
            live_from = self.head
            while position < live_from:
                changes = [
                    c
                    for c in self._reader.changes_since(position, self._batch)
                    if c.position <= live_from
                ]
                if not changes:
                    break
                for chunk in self._chunks(feed_filter, changes, position):
                    yield chunk
                    await asyncio.sleep(0)
                position = changes[-1].position
            position = max(position, live_from)
            while True:
                wait = heartbeat_s
                if deadline is not None:
                    wait = min(wait, deadline - loop.time())
                    if wait <= 0:
                        return
                try:
                    async with asyncio.timeout(wait):
                        batch = await queue.get()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                batches = [batch]
                while not queue.empty():  # everything already waiting goes in one chunk
                    batches.append(queue.get_nowait())
                if any(b is None for b in batches):
                    return  # overflowed: the client reconnects with Last-Event-ID
                changes = [c for b in batches if b is not None for c in b]
                pending[0] -= len(changes)
                for chunk in self._chunks(feed_filter, changes, position):
                    yield chunk
                    await asyncio.sleep(0)
                position = max(position, changes[-1].position)
        finally:
            self._subscribers.pop(queue, None)

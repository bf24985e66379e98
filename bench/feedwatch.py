"""Observe when changes become visible through the query API's change feed (SSE).

A :class:`FeedWatcher` keeps one ``/api/v1/watch`` stream open with a server-side
filter (kind + name prefix: only the probes), and records the wall time each
(cluster, name, resourceVersion) arrives. Parsing is split out (:class:`SseParser`,
pure) from the stream reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import orjson

from bench.errors import BenchError


class FeedError(BenchError):
    """The change feed could not be read."""

    retriable = True


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    event_id: str
    data: bytes


class SseParser:
    """Incremental Server-Sent Events parser: feed bytes, get complete events."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._id = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> Iterator[SseEvent]:
        self._buffer += chunk
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                return
            line = self._buffer[:newline].rstrip(b"\r")
            self._buffer = self._buffer[newline + 1 :]
            if not line:
                if self._data or self._event:
                    yield SseEvent(self._event or "message", self._id, b"\n".join(self._data))
                self._event, self._data = "", []
                continue
            if line.startswith(b":"):
                continue  # comment: heartbeat
            name, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if name == b"data":
                self._data.append(value)
            elif name == b"event":
                self._event = value.decode()
            elif name == b"id":
                self._id = value.decode()


@dataclass(frozen=True, slots=True)
class Sighting:
    """One change seen on the feed."""

    cluster: str
    name: str
    resource_version: str
    op: str  #: UPSERT or DELETE
    seen_at: float  #: wall time of arrival, seconds
    #: when the producer observed the change (the record's ``eventTimeMs``), seconds;
    #: splits a latency into the cluster side and the pipeline after the producer
    event_at: float = 0.0


@dataclass
class FeedWatcher:
    """Reads the feed of ``base_url`` in a background task until :meth:`stop`."""

    base_url: str
    token: str
    kind: str = "ConfigMap"
    name_prefix: str = ""
    sightings: list[Sighting] = field(default_factory=list)
    events: int = 0
    _task: asyncio.Task[None] | None = None
    _connected: asyncio.Event = field(default_factory=asyncio.Event)
    _session: aiohttp.ClientSession | None = None
    _last_id: str = ""

    def url(self) -> str:
        query = {"kind": self.kind}
        if self.name_prefix:
            query["namePrefix"] = self.name_prefix
        if self._last_id:
            query["from"] = self._last_id
        return f"{self.base_url.rstrip('/')}/api/v1/watch?{urlencode(query)}"

    async def start(self, timeout_s: float = 30.0) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            headers={"Authorization": f"Bearer {self.token}"},
        )
        self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError as exc:
            await self.stop()
            raise FeedError(f"could not open the change feed at {self.url()}") from exc

    async def _run(self) -> None:
        """Read the stream; reconnect (resuming after the last id) when it ends."""
        assert self._session is not None
        while True:
            try:
                async with self._session.get(self.url()) as response:
                    if response.status != 200:
                        body = await response.text()
                        raise FeedError(f"feed answered {response.status}: {body[:300]}")
                    self._connected.set()
                    parser = SseParser()
                    async for chunk in response.content.iter_any():
                        now = time.time()
                        for event in parser.feed(chunk):
                            self._take(event, now)
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)

    def _take(self, event: SseEvent, now: float) -> None:
        if event.event_id:
            self._last_id = event.event_id
        if event.event != "change":
            return
        self.events += 1
        change = orjson.loads(event.data)
        self.sightings.append(
            Sighting(
                change["cluster"],
                change["name"],
                str(change.get("resourceVersion") or ""),
                str(change.get("type") or ""),
                now,
                int(change.get("eventTimeMs") or 0) / 1000.0,
            )
        )

    def first_seen(self) -> dict[tuple[str, str], float]:
        """(cluster, name) -> when it was first seen (creation of a probe)."""
        return {key: s.seen_at for key, s in self.first_sightings().items()}

    def first_sightings(self) -> dict[tuple[str, str], Sighting]:
        """(cluster, name) -> its first sighting."""
        seen: dict[tuple[str, str], Sighting] = {}
        for s in self.sightings:
            seen.setdefault((s.cluster, s.name), s)
        return seen

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

"""Incremental fetch sessions (KIP-227) under aiokafka's consumer.

aiokafka sends full fetch requests: every request names every partition the
consumer reads, the broker answers for every one of them, and aiokafka encodes and
decodes all those entries in Python (~20 ms per fetch of 1,000 partitions here). A
consumer of 1,000 quiet cluster topics spent ~90 % of its CPU (0.6 cores at ~160
changes/s) in that loop and the broker 0.5 cores answering it (docs/benchmarks.md,
"Many quiet topics"). Spacing the requests did not help: at 20 ms per fetch they
were already that far apart.

With a session the broker remembers the partitions and their fetch offsets. A
request names only the partitions whose offset changed (or that joined) and those
to forget; the answer carries only partitions with records or a changed high
watermark, log start or error. Omitted partitions are unchanged, so aiokafka's
per-partition state (position, high watermark) stays right without seeing them.

How it fits under aiokafka: the fetcher builds its usual full request (the
partitions it wants now, each at its position) and hands it to the client. The
:class:`SessionClient` standing in for the client diffs that against what the
session holds and sends the difference, then hands the answer back to the fetcher,
which checks every returned partition against the full request it built: the
session always holds exactly the partitions of the latest request at their offsets
(partitions aiokafka leaves out because their records are still buffered are
forgotten, and named again once drained), so that check still holds.

Anything uncertain (a top-level error such as an evicted session or a wrong epoch,
a failed or cancelled send, a broker below fetch v7) drops the session; the next
request is a full one that also closes the old session on the broker. A broker that
answers three requests in a row with a top-level error gets full requests without a
session from then on (send failures do not count: a broker restart is not a refusal).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.protocol.fetch import FetchRequest, FetchRequestStruct

from consumers.errors import ConsumerError

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]
#: What a request asks of a partition: (fetch offset, most bytes).
Ask = tuple[int, int]

#: Session ids and epochs as KIP-227 defines them.
NO_SESSION = 0
INITIAL_EPOCH = 0  #: a full request that creates a session (and closes the one named)
FINAL_EPOCH = -1  #: a full request without a session
_MAX_EPOCH = 2**31 - 1
#: First fetch version with session fields.
SESSION_MIN_VERSION = 7
#: Answers in a row with a top-level error after which a broker gets full requests
#: without a session from then on: one that keeps refusing sessions must not keep
#: the consumer from reading (its answers to refused requests carry no records).
MAX_REFUSALS = 3


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What to send: the session fields and the partitions to name and to forget."""

    session_id: int
    epoch: int
    asks: dict[PartitionKey, Ask]  #: partitions named, at these offsets
    forgotten: tuple[PartitionKey, ...]  #: partitions the session drops

    @property
    def full(self) -> bool:
        return self.epoch in (INITIAL_EPOCH, FINAL_EPOCH)


@dataclass(frozen=True, slots=True)
class SessionCounts:
    """Counts over a consumer's sessions since it started (for its metrics)."""

    full_requests: int = 0
    incremental_requests: int = 0
    partitions_named: int = 0
    resets: int = 0


class FetchSession:
    """One broker's fetch session as the client sees it (pure: no I/O). Disabled, every
    request is a full one without a session (what aiokafka sends), still counted."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.session_id = NO_SESSION  #: the broker's id of the session, 0 before it exists
        self.epoch = INITIAL_EPOCH  #: the epoch the next request carries
        self._held: dict[PartitionKey, Ask] = {}  #: partitions the broker's session holds
        self._pending: tuple[SessionRequest, dict[PartitionKey, Ask]] | None = None
        self.full_requests = 0  #: full requests planned (counts)
        self.incremental_requests = 0  #: incremental requests planned (counts)
        self.resets = 0  #: sessions dropped after an error
        self._refusals = 0  #: top-level errors in a row
        self.partitions_named = 0  #: partitions named over all requests (counts)
        self.partitions_forgotten = 0  #: partitions dropped from the session (counts)

    def plan(self, wanted: dict[PartitionKey, Ask]) -> SessionRequest:
        """The request that makes the session hold exactly ``wanted`` (kept as the
        session's state once answered: the caller hands it over and does not change it)."""
        target = wanted
        if not self.enabled:
            request = SessionRequest(NO_SESSION, FINAL_EPOCH, target, ())
            self.full_requests += 1
        elif self.epoch == INITIAL_EPOCH:
            request = SessionRequest(self.session_id, INITIAL_EPOCH, target, ())
            self.full_requests += 1
        else:
            held = self._held
            asks = {key: ask for key, ask in target.items() if held.get(key) != ask}
            forgotten = tuple(key for key in held if key not in target)
            request = SessionRequest(self.session_id, self.epoch, asks, forgotten)
            self.incremental_requests += 1
        self.partitions_named += len(request.asks)
        self.partitions_forgotten += len(request.forgotten)
        self._pending = (request, target)
        return request

    def answered(self, error_code: int, session_id: int) -> None:
        """The broker answered the planned request with these top-level fields."""
        if self._pending is None:
            raise ConsumerError("fetch session answered without a planned request")
        request, target = self._pending
        self._pending = None
        if request.epoch == FINAL_EPOCH:
            return  # no session: nothing to keep
        if error_code != 0:
            self.reset()
            self._refusals += 1
            if self._refusals >= MAX_REFUSALS:
                self.enabled = False
                log.warning(
                    "fetch session refused %d times in a row (error %d): "
                    "full fetch requests from now on",
                    self._refusals,
                    error_code,
                )
            return
        self._refusals = 0
        if request.full:
            if session_id == NO_SESSION:  # the broker keeps no session for us (cache full)
                self.session_id, self.epoch, self._held = NO_SESSION, INITIAL_EPOCH, {}
                return
            self.session_id = session_id
            self.epoch = 1
        else:
            self.epoch = self.epoch + 1 if self.epoch < _MAX_EPOCH else 1
        self._held = target

    def reset(self) -> None:
        """Forget the session's state: the next request is full and closes this session
        on the broker (same id, epoch 0) instead of leaving it to expire."""
        self._pending = None
        self._held = {}
        self.epoch = INITIAL_EPOCH
        self.resets += 1


def _by_topic(
    asks: Mapping[PartitionKey, Ask], with_leader_epoch: bool
) -> list[tuple[str, list[tuple[int, ...]]]]:
    topics: dict[str, list[tuple[int, ...]]] = {}
    for (topic, partition), (offset, max_bytes) in asks.items():
        entry = (
            (partition, -1, offset, -1, max_bytes)  # -1: leader epoch and log start unknown
            if with_leader_epoch
            else (partition, offset, -1, max_bytes)
        )
        topics.setdefault(topic, []).append(entry)
    return list(topics.items())


class SessionFetchRequest(FetchRequest):  # type: ignore[misc]
    """A fetch request carrying session fields; below v7 it is the full request."""

    def __init__(self, full: FetchRequest, session: SessionRequest) -> None:
        super().__init__(
            full._max_wait_ms,
            full._min_bytes,
            full._max_bytes,
            full._isolation_level,
            full.topics,
            full._rack_id,
        )
        self.session = session
        self.built_version: int | None = None  #: the version the connection chose

    def build(self, request_struct_class: type[FetchRequestStruct]) -> FetchRequestStruct:
        version = request_struct_class.API_VERSION
        self.built_version = version
        if version < SESSION_MIN_VERSION:
            return super().build(request_struct_class)
        session = self.session
        forgotten: dict[str, list[int]] = {}
        for topic, partition in session.forgotten:
            forgotten.setdefault(topic, []).append(partition)
        args: list[object] = [
            -1,  # replica_id: a consumer
            self._max_wait_ms,
            self._min_bytes,
            self._max_bytes,
            self._isolation_level,
            session.session_id,
            session.epoch,
            _by_topic(session.asks, with_leader_epoch=version >= 9),
            list(forgotten.items()),
        ]
        if version >= 11:
            args.append(self._rack_id)
        return request_struct_class(*args)


class SessionClient:
    """aiokafka's client as its fetcher sees it: fetch requests go through one session
    per broker, everything else (and every other attribute) is the client's own."""

    def __init__(self, client: Any, enabled: bool = True) -> None:
        self._client = client
        self.enabled = enabled  #: sessions on; off, requests stay full (and counted)
        self.sessions: dict[int, FetchSession] = {}  #: by broker node id

    def counts(self) -> SessionCounts:
        sessions = self.sessions.values()
        return SessionCounts(
            full_requests=sum(s.full_requests for s in sessions),
            incremental_requests=sum(s.incremental_requests for s in sessions),
            partitions_named=sum(s.partitions_named for s in sessions),
            resets=sum(s.resets for s in sessions),
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
        if not isinstance(request, FetchRequest):
            return await self._client.send(node_id, request, **kwargs)
        session = self.sessions.get(node_id)
        if session is None:
            session = self.sessions[node_id] = FetchSession(self.enabled)
        wanted = {
            (topic, partition): (offset, max_bytes)
            for topic, partitions in request.topics
            for partition, offset, max_bytes in partitions
        }
        session_request = SessionFetchRequest(request, session.plan(wanted))
        try:
            response = await self._client.send(node_id, session_request, **kwargs)
        except BaseException:
            session.reset()  # did the broker see it? Unknown: start over
            raise
        if session_request.built_version is None or (
            session_request.built_version < SESSION_MIN_VERSION
        ):
            session.reset()  # an old broker: every request stays full
        else:
            session.answered(response.error_code, response.session_id)
        return response


def use_fetch_sessions(consumer: AIOKafkaConsumer, enabled: bool = True) -> SessionClient:
    """Give ``consumer``'s fetcher a :class:`SessionClient` (``enabled`` False: full
    requests as aiokafka sends them, counted). Call after ``start()`` (which creates
    the fetcher) and before the first assignment."""
    fetcher = getattr(consumer, "_fetcher", None)
    client = getattr(fetcher, "_client", None)
    if fetcher is None or client is None:
        # aiokafka moved its internals: say so rather than silently fetch in full.
        raise ConsumerError("cannot use fetch sessions: aiokafka's fetcher is not where expected")
    if isinstance(client, SessionClient):
        return client
    sessions = SessionClient(client, enabled)
    fetcher._client = sessions
    return sessions

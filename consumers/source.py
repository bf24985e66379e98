"""The thin Kafka layer of the live consumer: which partitions, from where, fetch.

The view, not Kafka, says where to resume: every time this process gains a
partition it seeks to the view's stored next offset (or the beginning).

* **replica** mode uses no consumer group. aiokafka's group-less pattern
  subscription re-creates every partition's state on each metadata change
  (so every position falls back to ``auto_offset_reset``) and calls no
  listener; instead this layer matches the topic pattern itself on a short
  timer, and on any change assigns the full partition list and seeks every
  partition to its stored offset, synchronously, before the next fetch.
* **shard** mode subscribes by pattern in a real consumer group. On
  revocation the listener waits for the in-flight batch to commit (it takes
  the batch lock, which a pass holds from plan to commit). On assignment it
  forgets, from this shard's view, every partition it no longer owns, and
  seeks the assigned ones to their stored offsets.

Records fetched before a rebalance never leak into the next assignment:
aiokafka hands out buffered records only while their partition is assigned
and its position equals the buffer's fetch offset, and a seek moves the
position. So what ``getmany`` returns is consistent with the assignment at
the moment it returns, and nothing yields between that moment and taking the
batch lock. (Dropping such a batch instead would lose it: ``getmany`` has
already advanced the positions past it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from consumers import fast_records
from consumers.config import ConsumerConfig, ConsumerMode
from consumers.errors import ConsumerError, KafkaFetchError
from consumers.fetch_sessions import SessionClient, use_fetch_sessions
from deltas.keys import topic_pattern
from plumbing.kafka import end_offsets
from store.records import SourceRecord

Partition = tuple[str, int]


def to_source_records(batches: Mapping[TopicPartition, Sequence[Any]]) -> list[SourceRecord]:
    """getmany's records as SourceRecords, partition by partition, offsets ascending:
    aiokafka ConsumerRecords are converted, SourceRecords (consumers/fast_records.py)
    taken as they are."""
    out: list[SourceRecord] = []
    extend = out.extend
    for tp, messages in batches.items():
        if messages and type(messages[0]) is SourceRecord:
            extend(messages)
            continue
        topic, partition = tp.topic, tp.partition
        extend(
            [
                SourceRecord(topic, partition, m.offset, m.key, m.value, m.timestamp)
                for m in messages
            ]
        )
    return out


def consumer_kwargs(config: ConsumerConfig) -> dict[str, Any]:
    """AIOKafkaConsumer settings shared by the live consumer, replay and the benchmark."""
    return {
        **config.connection.client_kwargs(),
        "enable_auto_commit": False,  # the store holds the offsets
        "auto_offset_reset": "earliest",  # a partition the view never saw: from the start
        "fetch_max_bytes": config.fetch_max_bytes,
        "max_partition_fetch_bytes": config.max_partition_fetch_bytes,
        "fetch_max_wait_ms": config.fetch_max_wait_ms,
        "fetch_min_bytes": config.fetch_min_bytes,
        "metadata_max_age_ms": config.metadata_refresh_ms,
        "check_crcs": False,  # TCP + the broker already check; the CRC pass costs ~10% CPU
    }


async def list_partitions(consumer: AIOKafkaConsumer) -> dict[str, set[int]]:
    """Every topic and its partitions, from a fresh metadata request.

    ``consumer.topics()`` makes the same request but returns names only, and its
    ``partitions_for_topic`` knows only topics the client already tracks; the
    client's ``fetch_all_metadata`` returns the whole snapshot.
    """
    cluster = await consumer._client.fetch_all_metadata()
    return {t: set(cluster.partitions_for_topic(t) or ()) for t in cluster.topics()}


def kafka_failure(exc: KafkaError, what: str) -> ConsumerError | KafkaFetchError:
    """Map an aiokafka error to ours; its ``retriable`` flag carries over."""
    if isinstance(exc, KafkaConnectionError) or getattr(exc, "retriable", False):
        return KafkaFetchError(f"{what}: {exc!r}")
    return ConsumerError(f"{what}: {exc!r}")


class TopicSource:
    """Assignment, seeking and fetching for one consumer process."""

    def __init__(
        self,
        config: ConsumerConfig,
        resume_offsets: Callable[[], Mapping[Partition, int]],
        forget: Callable[[set[Partition]], None],
    ) -> None:
        self._config = config
        self._resume_offsets = resume_offsets
        self._forget = forget
        self._pattern = re.compile(topic_pattern(config.topic_prefix))
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # held while a batch is planned and committed
        self.rebalances = 0  #: revocations seen (shard mode)
        self._assigned: frozenset[TopicPartition] = frozenset()
        self._next_topic_check = 0.0
        self._listener_error: BaseException | None = None
        #: The fetcher's client (sessions and per-broker counts) once started.
        self.fetch_client: SessionClient | None = None
        #: Set once the first assignment is known (replica: first topic scan).
        self.assigned_event = asyncio.Event()

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        return self._assigned

    @property
    def consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise ConsumerError("the Kafka consumer is not started")
        return self._consumer

    async def start(self) -> None:
        if self._consumer is not None:
            return
        shard = self._config.mode is ConsumerMode.SHARD
        kwargs = consumer_kwargs(self._config)
        kwargs.update(fast_records.consumer_options(self._config.fast_records))
        if self._config.fast_records:
            fast_records.install()
        if shard:
            kwargs.update(
                group_id=self._config.group_id,
                session_timeout_ms=self._config.session_timeout_ms,
                heartbeat_interval_ms=self._config.heartbeat_interval_ms,
                max_poll_interval_ms=self._config.max_poll_interval_ms,
            )
        consumer = AIOKafkaConsumer(**kwargs)
        try:
            await consumer.start()
        except KafkaError as exc:
            await consumer.stop()
            raise kafka_failure(exc, "cannot start the Kafka consumer") from exc
        try:
            self.fetch_client = use_fetch_sessions(consumer, self._config.fetch_sessions)
        except ConsumerError:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._assigned = frozenset()
        self._next_topic_check = 0.0
        if shard:
            consumer.subscribe(pattern=self._pattern.pattern, listener=_Listener(self))

    async def stop(self) -> None:
        """Close the consumer (shard mode: leave the group). The in-flight batch, if any,
        is committed first because leaving revokes, and revocation waits for the lock."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with contextlib.suppress(KafkaError):
                await consumer.stop()

    async def fetch(self) -> list[SourceRecord]:
        """One getmany over every assigned partition (after a topic scan in replica mode)."""
        self._raise_listener_error()
        consumer = self.consumer
        if self._config.mode is ConsumerMode.REPLICA:
            await self._maybe_rescan_topics(consumer)
        timeout_s = self._config.getmany_timeout_ms / 1000
        if self._config.mode is ConsumerMode.REPLICA and not self._assigned:
            # Nothing to read yet (no cluster topic exists): getmany would wait for an
            # assignment forever, ignoring its timeout, and the loop could not stop.
            await asyncio.sleep(timeout_s)
            return []
        fetching = asyncio.ensure_future(
            consumer.getmany(timeout_ms=self._config.getmany_timeout_ms,
                             max_records=self._config.batch_max_records)
        )  # fmt: skip
        # getmany also waits, without a timeout, while a group rebalances: bound it so
        # a stop request is seen. Cancelling is safe: getmany drains and returns with no
        # await in between, so a cancelled call has taken nothing; one that finished
        # first keeps its result.
        try:
            done, _ = await asyncio.wait({fetching}, timeout=timeout_s + 1.0)
            if not done:
                fetching.cancel()
                await asyncio.wait({fetching})
            batches = fetching.result() if not fetching.cancelled() else {}
        except KafkaError as exc:
            raise kafka_failure(exc, "fetching records failed") from exc
        if batches:
            await _let_the_next_fetch_go_out()
        return to_source_records(batches)

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """The batch lock: a revocation waits until the batch holding it is committed."""
        async with self._lock:
            self._raise_listener_error()
            yield

    def highwater(self, tp: TopicPartition) -> int | None:
        """Latest high watermark the brokers reported for ``tp`` (no I/O)."""
        if self._consumer is None:
            return None
        value: int | None = self._consumer.highwater(tp)
        return value

    async def end_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = list(partitions)
        if not tps:
            return {}
        try:
            offsets: dict[TopicPartition, int] = await end_offsets(self.consumer, tps)
        except KafkaError as exc:
            raise kafka_failure(exc, "listing end offsets failed") from exc
        return offsets

    # -- replica mode ---------------------------------------------------------------------

    async def _maybe_rescan_topics(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now < self._next_topic_check:
            return
        self._next_topic_check = now + self._config.metadata_refresh_ms / 1000
        try:
            topics = await list_partitions(consumer)
        except KafkaError as exc:
            raise kafka_failure(exc, "listing topics failed") from exc
        wanted = {
            TopicPartition(topic, p)
            for topic, parts in topics.items()
            if self._pattern.match(topic)
            for p in parts
        }
        if wanted != self._assigned:
            consumer.assign(sorted(wanted))
            self._seek_to_stored(consumer, wanted)
            self._assigned = frozenset(wanted)
        self.assigned_event.set()

    # -- shard mode -----------------------------------------------------------------------

    async def _on_revoked(self) -> None:
        async with self._lock:  # waits for the in-flight batch to be committed
            self.rebalances += 1

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        async with self._lock:
            stored = self._resume_offsets()
            lost = {p for p in stored if TopicPartition(*p) not in assigned}
            if lost:
                self._forget(lost)
            self._seek_to_stored(self.consumer, assigned)
            self._assigned = frozenset(assigned)
        self.assigned_event.set()

    def _seek_to_stored(self, consumer: AIOKafkaConsumer, tps: Iterable[TopicPartition]) -> None:
        stored = self._resume_offsets()
        for tp in tps:
            consumer.seek(tp, stored.get((tp.topic, tp.partition), 0))

    def _listener_failed(self, exc: BaseException) -> None:
        self._listener_error = exc

    def _raise_listener_error(self) -> None:
        exc, self._listener_error = self._listener_error, None
        if exc is not None:
            raise ConsumerError(f"rebalance handling failed: {exc!r}") from exc


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka logs and swallows listener errors; we hand them to the next pass instead."""

    def __init__(self, source: TopicSource) -> None:
        self._source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await self._source._on_revoked()
        except Exception as exc:
            self._source._listener_failed(exc)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        try:
            await self._source._on_assigned(set(assigned))
        except Exception as exc:
            self._source._listener_failed(exc)


#: Event-loop turns from getmany draining the prefetched records to aiokafka's fetch
#: request being written: the fetcher task wakes, then starts the request's task.
_TURNS_TO_SEND_A_FETCH = 3


async def _let_the_next_fetch_go_out() -> None:
    """Yield a few turns so aiokafka sends the next fetch request now. The pass that
    follows plans and commits without awaiting anything: without this, the request
    would leave only after the commit, and every pass would wait a fetch round trip
    (under 10,000 changes/s the broker's answer, ready in milliseconds, then waits in
    the socket for the pass to end instead)."""
    for _ in range(_TURNS_TO_SEND_A_FETCH):
        await asyncio.sleep(0)

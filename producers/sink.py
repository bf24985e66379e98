"""The Kafka side: a shared idempotent producer (``KafkaTransport``) and, per
cluster topic, a sink that batches records per partition, keeps at most one
batch in flight per partition (order per key holds, even across retries), and
re-sends failed batches until Kafka takes them. Memory is bounded by
``PendingBuffer``; callers pause (backpressure) while it is full.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, MessageSizeTooLargeError

from plumbing.errors import KafkaUnavailableError
from plumbing.kafka import MAX_RECORD_BYTES, KafkaConnection
from producers.buffer import BufferLimits, PendingBuffer
from producers.config import SinkConfig
from producers.metrics import ProducerMetrics
from producers.records import OutRecord

log = logging.getLogger(__name__)

#: Records carry no Kafka headers: a header costs aiokafka's batch builder ~3 us per
#: record (and ~15 bytes on the wire); a restarted producer hashes the bodies it reads
#: back instead (producers.restore). aiokafka does not modify the list.
_NO_HEADERS: list[tuple[str, bytes]] = []


class BatchTransport(Protocol):
    """What a sink needs from Kafka (``KafkaTransport``; tests use a fake)."""

    @property
    def generation(self) -> int: ...

    async def send(
        self, topic: str, partition: int, records: list[OutRecord]
    ) -> tuple[int, int]: ...

    async def reset(self, seen_generation: int) -> None: ...


class KafkaTransport:
    """One ``AIOKafkaProducer`` (idempotent, acks=all) shared by every sink of a process."""

    def __init__(self, connection: KafkaConnection, config: SinkConfig) -> None:
        self._connection = connection
        self._config = config
        self._producer: AIOKafkaProducer | None = None
        self._generation = 0

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **self._connection.client_kwargs(),
            acks="all",
            enable_idempotence=True,
            compression_type=None
            if self._config.compression == "none"
            else self._config.compression,
            max_batch_size=self._config.max_batch_bytes,
            max_request_size=MAX_RECORD_BYTES,
            linger_ms=0,  # the sink lingers itself: it builds whole batches
        )

    async def start(self) -> None:
        producer = self._new_producer()
        try:
            await producer.start()
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            await producer.stop()
            raise KafkaUnavailableError(
                f"cannot reach Kafka at {self._connection.bootstrap_servers}: {exc!r}"
            ) from exc
        self._producer = producer
        self._generation += 1

    @property
    def generation(self) -> int:
        """Increments on every (re)start: a new producer id, sequence state reset."""
        return self._generation

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def reset(self, seen_generation: int) -> None:
        """Replace the producer after an error its idempotence state cannot survive
        (out-of-order sequence, fenced epoch). No-op if another sink already did."""
        if seen_generation != self._generation:
            return
        await self.stop()
        await self.start()

    async def partitions_for(self, topic: str) -> int:
        producer = self._require()
        try:
            parts = await producer.partitions_for(topic)
        except KafkaError as exc:
            raise KafkaUnavailableError(f"no metadata for {topic}: {exc!r}") from exc
        if not parts:
            raise KafkaUnavailableError(f"topic {topic} has no partitions (yet)")
        return len(parts)

    async def partitions_of(self, topics: Sequence[str]) -> list[int]:
        """Partition counts of many topics, learned with one metadata request (asking
        topic by topic refreshes the metadata of every tracked topic each time)."""
        producer = self._require()
        client = producer.client
        tracked: set[str] = set(client._topics)
        try:
            if not tracked.issuperset(topics):
                await client.set_topics(tracked | set(topics))
        except KafkaError as exc:
            raise KafkaUnavailableError(f"no metadata for {len(topics)} topics: {exc!r}") from exc
        counts = []
        for topic in topics:
            parts = client.cluster.partitions_for_topic(topic)
            # Not in that answer yet (a topic just created): ask for it alone.
            counts.append(len(parts) if parts else await self.partitions_for(topic))
        return counts

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaUnavailableError("the Kafka producer is not started")
        return self._producer

    async def send(self, topic: str, partition: int, records: list[OutRecord]) -> tuple[int, int]:
        """Send the first records that fit one batch; return (records sent, batch bytes)."""
        producer = self._require()
        batch = producer.create_batch()
        count = 0
        for record in records:
            if (
                batch.append(
                    key=record.key, value=record.value, timestamp=None, headers=_NO_HEADERS
                )
                is None
            ):
                break
            count += 1
        future = await producer.send_batch(batch, topic, partition=partition)
        await future
        return count, int(batch.size())


class KafkaSink:
    """Records of one cluster topic, from ``submit`` to Kafka's acknowledgement."""

    def __init__(
        self,
        cluster: str,
        topic: str,
        partitions: int,
        transport: BatchTransport,
        config: SinkConfig,
        metrics: ProducerMetrics,
        on_ack: Callable[[list[OutRecord], float], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.topic = topic
        self._transport = transport
        self._config = config
        self._buffer = PendingBuffer(
            partitions, BufferLimits(config.buffer_max_records, config.buffer_max_bytes)
        )
        self._wake = [asyncio.Event() for _ in range(partitions)]
        self._room = asyncio.Event()
        self._room.set()
        self._drained = asyncio.Event()
        self._drained.set()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_seq = 0
        self._on_ack = on_ack
        self._rng = random.Random()
        self._single = [False] * partitions  # after a too-large batch: send one by one
        m = metrics
        self._m_acked = m.records_acked.labels(cluster)
        self._m_bytes = m.bytes_sent.labels(cluster)
        self._m_batch_bytes = m.batch_bytes.labels(cluster)
        self._m_failures = m.send_failures.labels(cluster)
        self._m_rejected = m.records_rejected.labels(cluster)
        self._m_latency = m.ack_latency.labels(cluster)
        self._m_depth = m.buffer_records.labels(cluster)
        self._m_depth_bytes = m.buffer_bytes.labels(cluster)
        self._m_waits = m.backpressure_waits.labels(cluster)
        self.acked_records = 0

    # -- producer side ---------------------------------------------------------------

    def submit(self, record: OutRecord) -> None:
        """Queue a record (never blocks, never drops; call ``wait_for_room`` first)."""
        self._buffer.push(record)
        if record.seq > self._last_seq:
            self._last_seq = record.seq
        self._drained.clear()
        if not self._buffer.has_room():
            self._room.clear()
        self._wake[record.partition].set()

    def has_room(self) -> bool:
        return self._buffer.has_room()

    async def wait_for_room(self) -> None:
        """Backpressure: return once the buffer is below its bounds."""
        if self._buffer.has_room():
            return
        self._m_waits.inc()
        while not self._buffer.has_room():
            self._room.clear()
            await self._room.wait()

    def acked_through(self) -> int:
        """Every record with seq <= this is acknowledged by Kafka."""
        lowest = self._buffer.lowest_pending_seq()
        return self._last_seq if lowest is None else lowest - 1

    @property
    def pending(self) -> int:
        return self._buffer.records

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything submitted is acknowledged; False on timeout."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- Kafka side ------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_loop(p), name=f"sink-{self.topic}-{p}")
            for p in range(self._buffer.partitions)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _send_loop(self, partition: int) -> None:
        attempt = 0
        buffer = self._buffer
        linger_s = self._config.linger_ms / 1000.0
        max_bytes = self._config.max_batch_bytes
        wake = self._wake[partition]
        while True:
            if buffer.waiting(partition) == 0:
                wake.clear()
                await wake.wait()
                continue
            if linger_s and not buffer.waiting_bytes_at_least(partition, max_bytes):
                # Linger counts from when the oldest waiting record's change was seen:
                # records that waited for the previous batch's acknowledgement have
                # lingered already, and go with the next produce request.
                oldest = buffer.oldest_waiting_observed(partition)
                delay = linger_s if oldest is None else oldest + linger_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            records = buffer.take(partition, 1 if self._single[partition] else max_bytes)
            generation = self._transport.generation
            try:
                sent, batch_bytes = await self._transport.send(self.topic, partition, records)
            except asyncio.CancelledError:
                buffer.retry(partition)
                raise
            except MessageSizeTooLargeError as exc:
                buffer.retry(partition)
                if len(records) > 1:
                    self._single[partition] = True
                    continue
                self._reject(partition, records[0], exc)
                continue
            except (KafkaError, KafkaUnavailableError, OSError) as exc:
                buffer.retry(partition)
                self._m_failures.inc()
                delay = self._config.backoff.delay(attempt, self._rng)
                attempt += 1
                log.warning(
                    "sending to %s[%d] failed (%r); retrying %d records in %.1f s",
                    self.topic,
                    partition,
                    exc,
                    len(records),
                    delay,
                )
                if not getattr(exc, "retriable", True):
                    await self._reset_transport(generation)
                await asyncio.sleep(delay)
                continue
            attempt = 0
            self._single[partition] = False
            self._acknowledged(partition, sent, batch_bytes)

    async def _reset_transport(self, generation: int) -> None:
        try:
            await self._transport.reset(generation)
        except KafkaUnavailableError as exc:
            log.warning("restarting the Kafka producer failed: %r", exc)

    def _reject(self, partition: int, record: OutRecord, exc: Exception) -> None:
        """Kafka will never take this record (larger than the topic allows): log loudly,
        count it and move on so the partition is not stuck forever."""
        log.error(
            "Kafka refused record %r (%d bytes) on %s[%d] for good: %r",
            record.key[:200],
            record.size,
            self.topic,
            partition,
            exc,
        )
        self._m_rejected.inc()
        self._acknowledged(partition, 1, 0)

    def _acknowledged(self, partition: int, count: int, batch_bytes: int) -> None:
        done = self._buffer.acknowledge(partition, count)
        now = time.monotonic()
        if done:
            # The batch's oldest record: its worst latency (one observation per batch
            # keeps the histogram off the hot path at 20k records/s).
            self._m_latency.observe(now - min(r.observed for r in done))
        size = sum(r.size for r in done)
        self.acked_records += len(done)
        self._m_acked.inc(len(done))
        self._m_bytes.inc(size)
        self._m_batch_bytes.inc(batch_bytes)
        self._m_depth.set(self._buffer.records)
        self._m_depth_bytes.set(self._buffer.bytes)
        if self._on_ack is not None:
            self._on_ack(done, now)
        if self._buffer.has_room():
            self._room.set()
        if self._buffer.is_empty():
            self._drained.set()

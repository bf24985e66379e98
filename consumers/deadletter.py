"""The dead-letter topic: where records the view refuses go, with why and where from.

A rejected record keeps its original key and value; Kafka headers say why it
was refused and where it came from, so an operator can inspect, fix and
re-publish it. The consumer awaits the acknowledgement (acks=all) of every
dead letter of a batch BEFORE committing that batch: a record is only ever
skipped once it is safely somewhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from consumers.errors import DeadLetterError
from plumbing.kafka import KafkaConnection, TopicSpec, ensure_topics
from store.records import Rejected

HEADER_REASON = "kubedelta.reason"
HEADER_TOPIC = "kubedelta.origin.topic"
HEADER_PARTITION = "kubedelta.origin.partition"
HEADER_OFFSET = "kubedelta.origin.offset"
HEADER_TIMESTAMP = "kubedelta.origin.timestamp_ms"
#: Reasons are error messages; cap them so a header never dwarfs the record.
MAX_REASON_BYTES = 2048
#: Extra room for headers and batch overhead above the largest record.
_OVERHEAD_BYTES = 64 * 1024


def dead_letter_headers(rejected: Rejected) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead letter: the reason and the record's origin."""
    record = rejected.record
    return [
        (HEADER_REASON, rejected.reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]),
        (HEADER_TOPIC, record.topic.encode()),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
        (HEADER_TIMESTAMP, str(record.timestamp_ms).encode()),
    ]


def dead_letter_topic_spec(topic: str, replication: int, max_record_bytes: int) -> TopicSpec:
    """Not compacted (dead letters have no meaningful key identity), kept 14 days."""
    return TopicSpec(
        name=topic,
        partitions=1,
        replication=replication,
        configs={
            "cleanup.policy": "delete",
            "retention.ms": str(14 * 24 * 3600 * 1000),
            "max.message.bytes": str(max_record_bytes + _OVERHEAD_BYTES),
        },
    )


class DeadLetterSink:
    """An idempotent, acks=all producer to the dead-letter topic."""

    def __init__(
        self,
        connection: KafkaConnection,
        topic: str,
        *,
        replication: int = 1,
        max_record_bytes: int,
    ) -> None:
        self._connection = connection
        self._topic = topic
        self._replication = replication
        self._max_record_bytes = max_record_bytes
        self._producer: AIOKafkaProducer | None = None

    @property
    def topic(self) -> str:
        return self._topic

    async def start(self) -> None:
        """Create the topic if absent, then connect. Idempotent."""
        if self._producer is not None:
            return
        await ensure_topics(
            self._connection,
            [dead_letter_topic_spec(self._topic, self._replication, self._max_record_bytes)],
        )
        producer = AIOKafkaProducer(
            **self._connection.client_kwargs(),
            acks="all",
            enable_idempotence=True,
            max_request_size=self._max_record_bytes + _OVERHEAD_BYTES,
            linger_ms=0,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            await producer.stop()
            raise DeadLetterError(f"cannot connect the dead-letter producer: {exc}") from exc
        self._producer = producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def send(self, rejected: Sequence[Rejected]) -> None:
        """Send every dead letter and wait until the brokers acknowledged all of them."""
        if not rejected:
            return
        await self.start()
        producer = self._producer
        assert producer is not None
        try:
            pending: list[asyncio.Future[Any]] = [
                await producer.send(
                    self._topic,
                    value=r.record.value,
                    key=r.record.key,
                    headers=dead_letter_headers(r),
                )
                for r in rejected
            ]
            await asyncio.gather(*pending)
        except KafkaError as exc:
            raise DeadLetterError(
                f"dead-letter topic {self._topic} did not acknowledge {len(rejected)} record(s)"
            ) from exc

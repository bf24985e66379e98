"""Offset lookups over many fresh topics (real broker)."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from plumbing.kafka import (
    KafkaConnection,
    TopicSpec,
    admin_client,
    beginning_offsets,
    end_offsets,
    ensure_topics,
)

pytestmark = pytest.mark.kafka


async def test_offsets_of_many_fresh_topics(kafka_bootstrap: str) -> None:
    # The consumer tracks none of these topics: aiokafka alone learns one per attempt
    # (metadata refresh + back-off), which timed out at 1,000 topics.
    prefix = f"offsets-{uuid.uuid4().hex[:8]}"
    topics = [f"{prefix}.t{i}" for i in range(150)]
    conn = KafkaConnection(kafka_bootstrap)
    await ensure_topics(conn, [TopicSpec(t, partitions=2, replication=1) for t in topics])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for i, t in enumerate(topics):
            for _ in range(i % 3):
                await producer.send(t, b"x", partition=1)
        await producer.flush()
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, request_timeout_ms=20_000)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in (0, 1)]
        ends = await end_offsets(consumer, tps)
        begins = await beginning_offsets(consumer, tps)
    finally:
        await consumer.stop()
        admin = admin_client(conn)
        await admin.start()
        try:
            await admin.delete_topics(topics)
        finally:
            await admin.close()
    assert ends == {
        TopicPartition(t, p): (i % 3 if p == 1 else 0) for i, t in enumerate(topics) for p in (0, 1)
    }
    assert set(begins.values()) == {0}

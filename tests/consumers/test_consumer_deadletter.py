"""Records the view refuses go to the dead-letter topic, with why and from where;
everything around them is applied."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from consumer_support import (
    LogBuilder,
    Out,
    Running,
    config,
    create_topics,
    end_offsets,
    pod,
    produce,
    unique_prefix,
)

from consumers.deadletter import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_TOPIC,
    dead_letter_headers,
)
from deltas import encode, topic_for
from store.records import Rejected, SourceRecord

pytestmark = pytest.mark.kafka


async def read_topic(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[ConsumerRecord[bytes, bytes]] = []
        for _ in range(100):
            batch = await consumer.getmany(tp, timeout_ms=200)
            got.extend(batch.get(tp, []))
            if len(got) >= count:
                break
        await asyncio.sleep(0.3)  # nothing more should arrive
        batch = await consumer.getmany(tp, timeout_ms=200)
        got.extend(batch.get(tp, []))
        return got
    finally:
        await consumer.stop()


def headers(record: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


async def test_poisoned_record_is_dead_lettered_and_the_next_10000_are_applied(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    topic = topic_for("alpha", prefix)
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    log = LogBuilder(prefix, 1)
    poison = Out(topic, b"poison-key", b"\x00 this is not a delta", partition=0)
    records = [log.upsert("alpha", i) for i in range(5)] + [poison]
    records += [log.upsert("alpha", i) for i in range(5, 10_005)]
    await produce(kafka_bootstrap, records)

    cfg = config(tmp_path / "v", kafka_bootstrap, prefix)
    async with Running(cfg) as live:
        await live.until_offsets(await end_offsets(kafka_bootstrap, [topic]))
        status = live.view.cluster_status("alpha")
        assert status is not None and status.object_count == 10_005
        registry = live.consumer.metrics.registry
        assert (
            registry.get_sample_value("kubedelta_consumer_dead_letter_total", {"cluster": "alpha"})
            == 1
        )

    letters = await read_topic(kafka_bootstrap, cfg.dead_letter_topic, 1)
    assert len(letters) == 1
    letter = letters[0]
    assert (letter.key, letter.value) == (poison.key, poison.value)
    h = headers(letter)
    assert h[HEADER_TOPIC] == topic
    assert h[HEADER_PARTITION] == "0"
    assert h[HEADER_OFFSET] == "5"
    assert "magic" in h[HEADER_REASON]


async def test_a_record_claiming_another_cluster_is_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    alpha = topic_for("alpha", prefix)
    await create_topics(kafka_bootstrap, [alpha], partitions=1)
    log = LogBuilder(prefix, 1)
    # Cluster alpha's credentials can only write alpha's topic; a record inside it
    # that says it is about cluster beta must not land in beta's part of the view.
    impostor = pod("beta", 7, seq=10_000)
    forged = Out(alpha, impostor.kafka_key(), encode(impostor), partition=0)
    await produce(kafka_bootstrap, [log.upsert("alpha", 1), forged, log.upsert("alpha", 2)])

    cfg = config(tmp_path / "v", kafka_bootstrap, prefix)
    async with Running(cfg) as live:
        await live.until_offsets(await end_offsets(kafka_bootstrap, [alpha]))
        assert live.view.clusters() == ["alpha"]
        status = live.view.cluster_status("alpha")
        assert status is not None and status.object_count == 2

    letters = await read_topic(kafka_bootstrap, cfg.dead_letter_topic, 1)
    assert [(r.key, r.value) for r in letters] == [(forged.key, forged.value)]
    h = headers(letters[0])
    assert (h[HEADER_TOPIC], h[HEADER_OFFSET]) == (alpha, "1")
    assert "beta" in h[HEADER_REASON]


def test_dead_letter_headers_carry_reason_and_origin() -> None:
    record = SourceRecord("p.cluster.a", 3, 42, b"k", b"v", 1_700_000_000_000)
    got = dict(dead_letter_headers(Rejected(record, "bad magic \u2603" + "x" * 5000)))
    assert got[HEADER_TOPIC] == b"p.cluster.a"
    assert got[HEADER_PARTITION] == b"3"
    assert got[HEADER_OFFSET] == b"42"
    assert got[HEADER_REASON].startswith("bad magic \u2603".encode())
    assert len(got[HEADER_REASON]) == 2048  # capped: a header never dwarfs the record

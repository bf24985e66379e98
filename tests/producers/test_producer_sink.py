"""The sink's retry, ordering and backpressure, with a fake Kafka transport (no broker):
the transport is the only thing faked, the buffer and loops are the real ones."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import CollectorRegistry

from deltas.errors import ConfigError
from plumbing.backoff import Backoff
from producers.config import SinkConfig
from producers.metrics import ProducerMetrics
from producers.records import OutRecord
from producers.sink import KafkaSink


class FakeTransport:
    """Stores batches per partition; fails the first ``failures`` sends; sends block
    while ``gate`` is closed."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.gate = asyncio.Event()
        self.gate.set()
        self.log: dict[int, list[int]] = {}
        self.generation = 1
        self.calls = 0

    async def send(self, topic: str, partition: int, records: list[OutRecord]) -> tuple[int, int]:
        self.calls += 1
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker down")
        self.log.setdefault(partition, []).extend(r.seq for r in records)
        return len(records), sum(r.size for r in records)

    async def reset(self, generation: int) -> None:
        self.generation += 1


def rec(seq: int, partition: int) -> OutRecord:
    return OutRecord(partition, b"k%d" % seq, b"v" * 100, seq, 0.0, "pods", "upsert")


def make(transport: FakeTransport, **config: object) -> KafkaSink:
    settings = SinkConfig(
        **{"linger_ms": 0.0, **config},  # type: ignore[arg-type]
        backoff=Backoff(initial_s=0.01, cap_s=0.05),
    )
    return KafkaSink(
        "c1",
        "t",
        2,
        transport,
        settings,
        ProducerMetrics(CollectorRegistry()),
    )


async def test_failed_sends_are_retried_in_order_and_nothing_is_lost() -> None:
    transport = FakeTransport(failures=5)
    sink = make(transport)
    sink.start()
    for seq in range(1, 41):
        sink.submit(rec(seq, seq % 2))
    assert await sink.drain(10)
    await sink.stop()
    assert transport.log[0] == list(range(2, 41, 2))
    assert transport.log[1] == list(range(1, 41, 2))
    assert transport.calls > 5 and sink.acked_through() == 40


async def test_full_buffer_pauses_producers_until_kafka_acknowledges() -> None:
    transport = FakeTransport()
    transport.gate.clear()  # Kafka unreachable
    sink = make(transport, buffer_max_records=5)
    sink.start()
    for seq in range(1, 6):
        sink.submit(rec(seq, 0))
    assert not sink.has_room()
    waiter = asyncio.create_task(sink.wait_for_room())
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert not await sink.drain(0.05)
    assert sink.acked_through() == 0
    transport.gate.set()  # Kafka is back
    await asyncio.wait_for(waiter, 5)
    assert await sink.drain(5)
    assert sink.pending == 0 and sink.acked_through() == 5
    await sink.stop()


def test_sink_config_rejects_a_zstd_level_zstd_does_not_have() -> None:
    assert SinkConfig().zstd_level == 1
    with pytest.raises(ConfigError, match="zstd_level"):
        SinkConfig(zstd_level=23)


def seen_at(seq: int, observed: float) -> OutRecord:
    return OutRecord(0, b"k%d" % seq, b"v" * 100, seq, observed, "pods", "upsert")


async def test_a_fresh_change_lingers_for_company() -> None:
    transport = FakeTransport()
    sink = make(transport, linger_ms=1_000.0)
    sink.start()
    sink.submit(seen_at(1, time.monotonic()))
    await asyncio.sleep(0.3)
    assert transport.calls == 0  # still lingering
    sink.submit(seen_at(2, time.monotonic()))
    assert await sink.drain(5)
    assert transport.calls == 1 and transport.log[0] == [1, 2]  # one batch
    await sink.stop()


async def test_linger_counts_from_when_the_oldest_waiting_change_was_seen() -> None:
    """Records that waited for the previous batch's acknowledgement longer than the
    linger go out as soon as it arrives, without lingering again."""
    transport = FakeTransport()
    transport.gate.clear()  # the first batch's acknowledgement takes a while
    sink = make(transport, linger_ms=1_000.0)
    sink.start()
    sink.submit(seen_at(1, time.monotonic() - 5.0))  # seen long ago: no linger at all
    await asyncio.sleep(0.2)
    assert transport.calls == 1
    sink.submit(seen_at(2, time.monotonic()))  # arrives while batch 1 is in flight
    await asyncio.sleep(1.2)  # now older than the linger
    transport.gate.set()
    assert await sink.drain(0.5)  # no second second of lingering after the ack
    assert transport.log[0] == [1, 2] and transport.calls == 2
    await sink.stop()

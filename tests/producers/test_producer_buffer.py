"""The bounded pending buffer: pure."""

from __future__ import annotations

import pytest

from deltas.errors import ConfigError
from producers.buffer import BufferLimits, PendingBuffer
from producers.records import OutRecord


def rec(seq: int, partition: int = 0, size: int = 84) -> OutRecord:
    return OutRecord(partition, b"k", b"v" * (size - 17), seq, 0.0, "pods", "upsert")


def test_room_is_bounded_by_count_and_bytes() -> None:
    buf = PendingBuffer(1, BufferLimits(max_records=3, max_bytes=10_000))
    for i in range(3):
        assert buf.has_room()
        buf.push(rec(i + 1))
    assert not buf.has_room()
    buf = PendingBuffer(1, BufferLimits(max_records=100, max_bytes=200))
    buf.push(rec(1, size=150))
    assert buf.has_room()
    buf.push(rec(2, size=150))
    assert not buf.has_room() and buf.bytes == 300


def test_take_respects_batch_bytes_but_always_takes_one() -> None:
    buf = PendingBuffer(1, BufferLimits(100, 10**6))
    buf.push(rec(1, size=500))
    buf.push(rec(2, size=100))
    assert [r.seq for r in buf.take(0, 200)] == [1]
    assert buf.waiting(0) == 1


def test_failed_batch_is_retried_first_and_in_order() -> None:
    buf = PendingBuffer(2, BufferLimits(100, 10**6))
    for i in range(1, 6):
        buf.push(rec(i))
    first = buf.take(0, 250)
    assert [r.seq for r in first] == [1, 2]
    with pytest.raises(RuntimeError):
        buf.take(0, 250)  # one batch in flight per partition
    buf.retry(0)
    assert [r.seq for r in buf.take(0, 10_000)] == [1, 2, 3, 4, 5]
    buf.acknowledge(0, 3)  # the transport split the batch: 3 sent, 2 wait again
    assert buf.records == 2 and buf.waiting(0) == 2
    assert buf.lowest_pending_seq() == 4


def test_lowest_pending_seq_across_partitions_and_empty() -> None:
    buf = PendingBuffer(2, BufferLimits(100, 10**6))
    assert buf.lowest_pending_seq() is None and buf.is_empty()
    buf.push(rec(5, 1))
    buf.push(rec(6, 0))
    buf.push(rec(7, 1))
    assert buf.lowest_pending_seq() == 5
    buf.take(1, 10**6)
    buf.acknowledge(1, 2)
    assert buf.lowest_pending_seq() == 6


def test_waiting_bytes_threshold_ignores_in_flight() -> None:
    buf = PendingBuffer(1, BufferLimits(100, 10**6))
    for i in range(4):
        buf.push(rec(i, size=100))
    assert buf.waiting_bytes_at_least(0, 400)
    buf.take(0, 150)
    assert not buf.waiting_bytes_at_least(0, 400)
    assert buf.waiting_bytes_at_least(0, 300)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        BufferLimits(0, 1)

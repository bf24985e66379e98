"""Fetched record batches into SourceRecords in C: the same records, offsets and
positions as aiokafka's own record path, on built batches and from the real broker."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from consumer_support import create_topics, unique_prefix

from consumers import fast_records
from consumers._speedups import RecordCursor
from consumers.fast_records import SOURCE_RECORDS, RawRecords, all_v2, consumer_options
from consumers.source import to_source_records
from store.records import SourceRecord

fast_records.install()

TP = TopicPartition("kubedelta.cluster.c1", 3)
NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
READ_UNCOMMITTED, READ_COMMITTED = 0, 1
Rec = tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]


def batch(
    records: Sequence[Rec],
    codec: int = NONE,
    *,
    last_offset: int | None = None,
    log_append_ms: int | None = None,
    control: bool = False,
) -> bytes:
    """One v2 record batch of (offset, timestamp, key, value, headers); the header
    fields the broker sets (last offset after compaction, LogAppendTime, control) are
    patched in, as the broker would."""
    builder = DefaultRecordBatchBuilder(2, codec, 0, -1, -1, -1, 10 * 1024 * 1024)
    for offset, ts, key, value, headers in records:
        builder.append(offset, ts, key, value, headers)
    data = bytearray(builder.build())
    base = struct.unpack_from(">q", data, 0)[0]
    if last_offset is not None:
        struct.pack_into(">i", data, 23, last_offset - base)
    attributes = struct.unpack_from(">h", data, 21)[0]
    if log_append_ms is not None:
        attributes |= 0x08
        struct.pack_into(">q", data, 35, log_append_ms)
    if control:
        attributes |= 0x20
    struct.pack_into(">h", data, 21, attributes)
    return bytes(data)


def pods(start: int, count: int, *, ts: int = 1_700_000_000_000) -> list[Rec]:
    out: list[Rec] = []
    for i in range(start, start + count):
        key = None if i % 7 == 3 else f"v1\x00Pod\x00ns\x00p{i}".encode()
        value = None if i % 5 == 4 else (b'{"kind":"Pod","n":%d}' % i) * (1 + i % 4)
        headers: list[tuple[str, bytes | None]] = [("h", b"x"), ("n", None)] if i % 3 else []
        out.append((i, ts + i * 10, key, value, headers))
    return out


def aiokafka_path(data: bytes, fetch_offset: int, take: int) -> tuple[list[SourceRecord], int]:
    """aiokafka's own PartitionRecords over ``data``, in pieces of ``take``, converted
    the way the consumer converted them before: what the cursor must equal."""
    records: Any = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(data), [], fetch_offset, None, None, False, READ_UNCOMMITTED
    )
    assert type(records) is fetcher_original()
    out: list[SourceRecord] = []
    while True:
        piece = [m for _, m in zip(range(take), records, strict=False)]
        out.extend(to_source_records({TP: piece}))
        if len(piece) < take:
            return out, records.next_fetch_offset


def fetcher_original() -> Any:
    records = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(batch(pods(0, 1))), [], 0, None, None, False, 0
    )
    return type(records)


def cursor_path(data: bytes, fetch_offset: int, take: int) -> tuple[list[SourceRecord], int]:
    records = fetcher.PartitionRecords(
        TP,
        fetcher.MemoryRecords(data),
        [],
        fetch_offset,
        None,
        SOURCE_RECORDS,
        False,
        READ_UNCOMMITTED,
    )
    assert type(records) is RecordCursor
    out: list[SourceRecord] = []
    while not records.exhausted:
        piece = records.take(take)
        assert len(piece) <= take
        out.extend(piece)
    assert records.take(take) == []
    return out, records.next_fetch_offset


LOGS = {
    "one plain batch": [batch(pods(0, 30))],
    "batches in every codec": [
        batch(pods(0, 12), NONE),
        batch(pods(12, 12), GZIP),
        batch(pods(24, 12), SNAPPY),
        batch(pods(36, 12), LZ4),
        batch(pods(48, 12), ZSTD),
    ],
    "compaction gaps and a batch whose last records were removed": [
        batch([r for r in pods(0, 20) if r[0] % 3], LZ4, last_offset=24),
        batch([r for r in pods(25, 10) if r[0] != 27], ZSTD),
    ],
    "log append time": [batch(pods(0, 9), ZSTD, log_append_ms=1_800_000_000_123)],
    "a control batch between data batches": [
        batch(pods(0, 5)),
        batch([(5, 1, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])], control=True),
        batch(pods(6, 5), LZ4),
    ],
}


@pytest.mark.parametrize("log", list(LOGS), ids=list(LOGS))
@pytest.mark.parametrize("take", [1, 4, 1000])
@pytest.mark.parametrize("partial", [False, True])
def test_the_cursor_hands_out_what_aiokafka_does(log: str, take: int, partial: bool) -> None:
    data = b"".join(LOGS[log])
    if partial:  # the broker cut the response inside a further batch
        data += batch(pods(900, 5), LZ4)[:-9]
    # the broker answers from the batch that holds the fetch offset
    first = struct.unpack_from(">q", data, 0)[0]
    first_last = first + struct.unpack_from(">i", data, 23)[0]
    for fetch_offset in sorted({first, first + 2, min(first + 7, first_last)}):
        expected, expected_next = aiokafka_path(data, fetch_offset, take)
        got, got_next = cursor_path(data, fetch_offset, take)
        assert got == expected
        assert all(type(r) is SourceRecord for r in got)
        assert got_next == expected_next
        assert [r.offset for r in got] == sorted({r.offset for r in got})
        assert not got or got[0].offset >= fetch_offset


def test_records_carry_topic_partition_key_value_and_timestamp() -> None:
    data = batch(pods(0, 5), ZSTD) + batch(pods(5, 1), NONE, log_append_ms=42)
    got, next_offset = cursor_path(data, 0, 100)
    assert got[0] == SourceRecord(
        TP.topic, TP.partition, 0, b"v1\x00Pod\x00ns\x00p0", b'{"kind":"Pod","n":0}',
        1_700_000_000_000,
    )  # fmt: skip
    assert got[3].key is None and got[4].value is None  # null key, tombstone
    assert got[5].timestamp_ms == 42 and next_offset == 6
    assert got[1]._fields == SourceRecord._fields and got[1].offset == 1


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({61: 0xFE, 62: 0x7F}, "record length"),  # runs past the batch
        ({61: 0x7E}, "record size does not match its fields"),  # longer than its fields
        ({63: 0x81}, "timestamp delta|offset delta|key length"),  # a varint runs on
    ],
)
def test_a_record_whose_fields_do_not_add_up_is_corrupt(
    patch: dict[int, int], message: str
) -> None:
    data = bytearray(batch(pods(0, 3)))
    for at, byte in patch.items():
        data[at] = byte
    cursor = RecordCursor(
        bytes(data), TP.topic, TP.partition, 0, lambda c, p: p, SourceRecord,
        CorruptRecordException,
    )  # fmt: skip
    with pytest.raises(CorruptRecordException, match=message):
        cursor.take(10)


def test_a_batch_in_an_old_format_takes_aiokafkas_path() -> None:
    legacy = LegacyRecordBatchBuilder(1, 0, 1024 * 1024)
    legacy.append(0, 1_700_000_000_000, b"k", b"v")
    old = bytes(legacy.build())
    assert not all_v2(old) and all_v2(batch(pods(0, 2)))
    records: Any = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(old), [], 0, None, SOURCE_RECORDS, False, READ_UNCOMMITTED
    )
    assert type(records) is not RecordCursor
    assert list(records) == [SourceRecord(TP.topic, TP.partition, 0, b"k", b"v", 1_700_000_000_000)]


def test_read_committed_crc_checks_and_other_consumers_keep_aiokafkas_path() -> None:
    data = batch(pods(0, 4))
    committed: Any = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(data), [], 0, None, SOURCE_RECORDS, False, READ_COMMITTED
    )
    assert type(committed) is not RecordCursor
    assert [r.offset for r in committed] == [0, 1, 2, 3]
    checked: Any = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(data), [], 0, None, SOURCE_RECORDS, True, READ_UNCOMMITTED
    )
    assert type(checked) is not RecordCursor
    assert [r.offset for r in checked] == [0, 1, 2, 3]
    plain: Any = fetcher.PartitionRecords(
        TP, fetcher.MemoryRecords(data), [], 0, None, None, False, READ_UNCOMMITTED
    )
    assert type(plain) is fetcher_original()
    assert [type(m).__name__ for m in plain] == ["ConsumerRecord"] * 4
    assert consumer_options(False) == {}
    wrapped = fetcher.MemoryRecords(data)
    assert type(wrapped) is RawRecords and wrapped.data == data
    assert wrapped.size_in_bytes() == len(data) and wrapped.has_next()


# -- from the real broker ---------------------------------------------------------------------


async def _produce(bootstrap: str, topic: str, codec: str | None, count: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20, acks="all"
    )
    await producer.start()
    try:
        sends = []
        for i in range(count):
            key = None if i % 11 == 5 else f"k{i}".encode()
            value = None if i % 13 == 7 and key is not None else b"v%d-" % i * (1 + i % 50)
            headers = [("h", b"%d" % i)] if i % 2 else None
            sends.append(
                await producer.send(topic, value, key=key, partition=i % 2, headers=headers)
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


async def _consume(
    bootstrap: str, topic: str, count: int, fast: bool, max_records: int
) -> list[SourceRecord]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        check_crcs=False,
        max_partition_fetch_bytes=4096,  # many responses, some ending in a partial batch
        **consumer_options(fast),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(2)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[SourceRecord] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        seeked = False
        while len(out) < count:
            assert loop.time() < deadline, f"{len(out)} of {count}"
            got = await consumer.getmany(timeout_ms=200, max_records=max_records)
            records = to_source_records(got)
            if fast:
                assert all(type(m) is SourceRecord for ms in got.values() for m in ms)
            out.extend(records)
            if not seeked and len(out) >= count // 2:
                # a seek back: the buffered cursor is dropped, the records come again
                seeked = True
                most = max((0, 1), key=lambda p: sum(r.partition == p for r in out))
                back = [r for r in out if r.partition == most][-5]
                consumer.seek(TopicPartition(topic, most), back.offset)
                out = [r for r in out if r.partition != most or r.offset < back.offset]
        for tp in tps:
            assert await consumer.position(tp) == (await consumer.end_offsets([tp]))[tp]
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


@pytest.mark.kafka
@pytest.mark.parametrize("codec", [None, "gzip", "lz4", "zstd"])
async def test_the_broker_s_records_come_out_as_aiokafka_reads_them(
    kafka_bootstrap: str, codec: str | None
) -> None:
    topic = f"{unique_prefix()}.fast"
    await create_topics(kafka_bootstrap, [topic], 2)
    await _produce(kafka_bootstrap, topic, codec, 400)
    fast = await _consume(kafka_bootstrap, topic, 400, True, 7)
    plain = await _consume(kafka_bootstrap, topic, 400, False, 1000)
    assert len(fast) == 400 and fast == plain
    assert {r.offset for r in fast if r.partition == 1} == set(range(200))

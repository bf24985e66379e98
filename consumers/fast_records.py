"""Fetched records straight into SourceRecords, under aiokafka's fetcher.

aiokafka turns every fetched record into a ``ConsumerRecord`` in Python (a generator
step, a ``_consumer_record`` call, a dataclass of eleven fields), and the consumer then
built a ``SourceRecord`` from it: together about half of the consumer's "fetch" stage
(~2 of ~4-5 us of its one thread per record; docs/benchmarks.md, Consume, session 15).
Here a C cursor (``consumers/_speedups.c``) reads the record batches of a partition's
fetch response and makes the ``SourceRecord`` directly, a batch of records per call.

How it is wired (aiokafka 0.12's private names; :func:`install` checks them and fails
loudly if they moved, as the zstd hook and the fetch sessions do):

* ``fetcher.MemoryRecords`` is wrapped so the raw bytes of each partition's response
  stay reachable (the C ``MemoryRecords`` hides them); the wrapper delegates the rest.
* ``fetcher.PartitionRecords`` becomes a factory. Only consumers that ask for it
  (``value_deserializer=SOURCE_RECORDS``, see :func:`consumer_options`) get the
  cursor; every other consumer in the process (tests, baselines, tools) gets aiokafka's
  own ``PartitionRecords`` unchanged.
* ``FetchResult.getall`` takes a whole run from the cursor in one call.

What keeps aiokafka's record path (converted to SourceRecords per record): a response
with a record batch in an older message format (v0/v1), read_committed consumers
(aborted transactions) and consumers that check CRCs; ours read uncommitted without
CRC checks and our producers write v2 batches, so none of it happens in kubedelta's
own traffic.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from aiokafka import TopicPartition
from aiokafka.errors import CorruptRecordException

from consumers._speedups import RecordCursor
from consumers.errors import ConsumerError
from store.records import SourceRecord

_READ_UNCOMMITTED: Final = 0
_MAGIC_AT: Final = 16  #: byte offset of the magic (format version) in a record batch
_LOG_OVERHEAD: Final = 12  #: base offset (8) + batch length (4)
_LENGTH: Final = struct.Struct(">i")


class _SourceRecordsMarker:
    """Passed as aiokafka's ``value_deserializer`` to ask for SourceRecords. aiokafka
    never calls it on our path; if it ever did, values stay bytes."""

    def __call__(self, value: bytes | None) -> bytes | None:
        return value

    def __repr__(self) -> str:
        return "SOURCE_RECORDS"


#: The marker of consumers that want SourceRecords from ``getmany``.
SOURCE_RECORDS: Final = _SourceRecordsMarker()


def consumer_options(enabled: bool) -> dict[str, Any]:
    """Extra AIOKafkaConsumer arguments: with ``enabled``, its ``getmany`` returns
    SourceRecords made in C (after :func:`install`); without, aiokafka's
    ConsumerRecords (convert them with ``consumers.source.to_source_records``)."""
    return {"value_deserializer": SOURCE_RECORDS} if enabled else {}


class RawRecords:
    """aiokafka's MemoryRecords over one partition's response, plus its bytes."""

    __slots__ = ("_inner", "data")

    def __init__(self, data: bytes, inner: Any) -> None:
        self.data = data
        self._inner = inner

    def has_next(self) -> bool:
        return bool(self._inner.has_next())

    def next_batch(self) -> Any:
        return self._inner.next_batch()

    def size_in_bytes(self) -> int:
        return int(self._inner.size_in_bytes())


def all_v2(data: bytes) -> bool:
    """Whether every complete record batch in ``data`` is message format v2."""
    pos, size = 0, len(data)
    while size - pos >= _LOG_OVERHEAD:
        (length,) = _LENGTH.unpack_from(data, pos + 8)
        if length < 0 or size - pos - _LOG_OVERHEAD < length:
            break  # a partial batch: the cursor stops there too
        if length < _MAGIC_AT + 1 - _LOG_OVERHEAD or data[pos + _MAGIC_AT] != 2:
            return False
        pos += _LOG_OVERHEAD + length
    return True


def _decompressor(default_records: ModuleType) -> Callable[[int, bytes], bytes]:
    """decompress(codec, payload) with the codecs aiokafka's record module uses (looked
    up per batch, so the zstd hook of plumbing/zstd.py applies whenever installed)."""
    names = {1: "gzip_decode", 2: "snappy_decode", 3: "lz4_decode", 4: "zstd_decode"}

    def decompress(codec: int, payload: bytes) -> bytes:
        name = names.get(codec)
        if name is None:
            raise CorruptRecordException(f"unknown compression codec {codec}")
        return bytes(getattr(default_records, name)(payload))

    return decompress


_installed = False


def install() -> None:
    """Patch aiokafka's fetcher once per process (idempotent); see the module doc."""
    global _installed
    if _installed:
        return
    try:
        from aiokafka.consumer import fetcher
        from aiokafka.record import default_records

        original_records = fetcher.PartitionRecords
        memory_records = fetcher.MemoryRecords
        fetch_result = fetcher.FetchResult
        original_getall = fetch_result.getall
        original_records._consumer_record  # noqa: B018 (checked: the fallback overrides it)
    except (ImportError, AttributeError) as exc:
        raise ConsumerError(
            f"aiokafka's fetcher internals moved ({exc}); consumers/fast_records.py "
            f"needs updating for this aiokafka version"
        ) from exc
    decompress = _decompressor(default_records)

    class SourcePartitionRecords(original_records):  # type: ignore[misc,valid-type]
        """aiokafka's own record path, yielding SourceRecords (the rare fallback)."""

        def _consumer_record(self, tp: TopicPartition, record: Any) -> SourceRecord:
            return SourceRecord(
                tp.topic, tp.partition, record.offset, record.key, record.value, record.timestamp
            )

    def raw_records(data: bytes) -> RawRecords:
        return RawRecords(data, memory_records(data))

    def partition_records(
        tp: TopicPartition,
        records: Any,
        aborted_transactions: Any,
        fetch_offset: int,
        key_deserializer: Any,
        value_deserializer: Any,
        check_crcs: bool,
        isolation_level: int,
    ) -> Any:
        if value_deserializer is not SOURCE_RECORDS:
            return original_records(
                tp,
                records,
                aborted_transactions,
                fetch_offset,
                key_deserializer,
                value_deserializer,
                check_crcs,
                isolation_level,
            )
        if (
            isolation_level == _READ_UNCOMMITTED
            and not check_crcs  # the cursor does not check CRCs (ours never ask for it)
            and type(records) is RawRecords
            and type(records.data) is bytes
            and all_v2(records.data)
        ):
            return RecordCursor(
                records.data,
                tp.topic,
                tp.partition,
                fetch_offset,
                decompress,
                SourceRecord,
                CorruptRecordException,
            )
        return SourcePartitionRecords(
            tp, records, aborted_transactions, fetch_offset, None, None, check_crcs,
            isolation_level,
        )  # fmt: skip

    def getall(self: Any, max_records: int | None = None) -> list[Any]:
        records = self._partition_records
        if type(records) is not RecordCursor:
            return original_getall(self, max_records)  # type: ignore[no-any-return]
        if not self.check_assignment(self._topic_partition) or not self.has_more():
            return []
        taken = records.take(max_records or 0)
        self._update_position()
        if records.exhausted:
            self._partition_records = None
        return taken

    fetcher.MemoryRecords = raw_records
    fetcher.PartitionRecords = partition_records
    fetch_result.getall = getall
    _installed = True

"""Read the cluster's topic back at start, so the first relist after a restart sends
only what differs from what the topic already holds.

For each key the last record wins: an UPSERT gives (fingerprint, resourceVersion),
a DELETE or a tombstone removes the key, control records are skipped. The
fingerprint is the hash of the record's body bytes, computed here as the emitter
computed it (no JSON parsing). It is not sent with the record: a Kafka header
cost every record sent ~3 us of the producer's CPU and ~15 bytes, to save ~4 us
per record read back here, once per restart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from deltas import Op, decode_header
from deltas.errors import DeltaFormatError
from deltas.keys import CONTROL_KEY_PREFIX
from plumbing.errors import KafkaUnavailableError
from plumbing.kafka import MAX_RECORD_BYTES, KafkaConnection, beginning_offsets, end_offsets
from producers.errors import ProducerError
from producers.ledger import KindLedger, Ledger
from producers.strip import fingerprint_of_body

log = logging.getLogger(__name__)

_CONTROL = CONTROL_KEY_PREFIX[0]


@dataclass(slots=True)
class RestoreStats:
    records: int = 0  #: records read
    upserts: int = 0
    deletes: int = 0  #: DELETE records and tombstones
    bad: int = 0  #: records that are not valid deltas (skipped, logged)


class TopicState:
    """Applies records, oldest first, to a ledger: afterwards it holds the topic's
    latest state (and matching per-partition digests). Pure."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.stats = RestoreStats()
        self._kinds: dict[bytes, KindLedger] = {}

    def _kind_of(self, key: bytes) -> KindLedger:
        group, kind, _ = key.split(b"\x00", 2)
        prefix = group + b"\x00" + kind
        ledger = self._kinds.get(prefix)
        if ledger is None:
            ledger = self._kinds[prefix] = self.ledger.kind((group.decode(), kind.decode()))
        return ledger

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        self.stats.records += 1
        if not key or key[0] == _CONTROL or key.count(b"\x00") != 3:
            return
        if value is None:
            self._kind_of(key).record_delete(key)
            self.stats.deletes += 1
            return
        try:
            header = decode_header(value)
        except DeltaFormatError as exc:
            self.stats.bad += 1
            log.warning("skipping a record that is not a delta (key %r): %s", key[:200], exc)
            return
        if header.op is Op.DELETE:
            self._kind_of(key).record_delete(key)
            self.stats.deletes += 1
            return
        if header.op is not Op.UPSERT:
            return
        fp = fingerprint_of_body(value[header.body_offset :], header.resource_version)
        self.stats.upserts += 1
        kind = self._kind_of(key)
        kind.record_upsert(key, fp, header.resource_version)
        kind.version = header.key.version


async def read_topic(connection: KafkaConnection, topic: str, ledger: Ledger) -> RestoreStats:
    """Consume every partition of ``topic`` from its start to the end offset seen at
    call time into ``ledger``."""
    return (await read_topics(connection, [(topic, ledger)]))[0]


async def read_topics(
    connection: KafkaConnection, targets: Sequence[tuple[str, Ledger]]
) -> list[RestoreStats]:
    """``read_topic`` for many topics (each into its own ledger) with one consumer: a
    multiplexed producer restores hundreds of clusters with one bootstrap, one metadata
    request and chunked offset lookups, not a consumer each."""
    states = {topic: TopicState(ledger) for topic, ledger in targets}
    if len(states) != len(targets):
        raise ProducerError("read_topics: a topic appears twice")
    consumer = AIOKafkaConsumer(
        **connection.client_kwargs(),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_RECORD_BYTES,
        fetch_max_bytes=16 * 1024 * 1024,  # bounds read-back memory (RSS target 200 MB)
        max_poll_records=2_000,
        isolation_level="read_uncommitted",
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        await consumer.stop()
        raise KafkaUnavailableError(f"cannot read back {_names(states)}: {exc!r}") from exc
    try:
        tps = [
            TopicPartition(topic, p) for topic, ledger in targets for p in range(ledger.partitions)
        ]
        consumer.assign(tps)
        firsts = await beginning_offsets(consumer, tps)
        ends = await end_offsets(consumer, tps)
        remaining = {tp for tp in tps if ends[tp] > firsts[tp]}
        if remaining:  # (no partitions would mean all of them)
            await consumer.seek_to_beginning(*remaining)
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, messages in batches.items():
                state = states[tp.topic]
                end = ends[tp]
                for message in messages:
                    if message.offset < end:
                        state.apply(message.key, message.value)
                if messages and messages[-1].offset + 1 >= end:
                    remaining.discard(tp)
            for tp in list(remaining):  # compaction can leave no record at end - 1
                if tp not in batches and await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    except KafkaError as exc:
        raise KafkaUnavailableError(f"reading back {_names(states)} failed: {exc!r}") from exc
    finally:
        await consumer.stop()
    return [states[topic].stats for topic, _ in targets]


def _names(states: Mapping[str, TopicState]) -> str:
    names = list(states)
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

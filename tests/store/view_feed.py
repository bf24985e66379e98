"""Builds Kafka-like records for store tests: a fake producer of ONE cluster topic
that assigns per-partition offsets and per-session sequence numbers, and encodes
with the real wire format (``deltas.encode``). No Kafka involved.

Imported as a sibling module (tests/store has no ``__init__.py``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import orjson

from deltas import (
    BodyEncoding,
    Delta,
    DigestMarker,
    Op,
    RelistMarker,
    ResourceKey,
    encode,
    encode_object,
    partition_for,
    topic_for,
)
from store import SourceRecord

BASE_MS = 1_700_000_000_000


class Feed:
    """The records one producer would write to ``kubedelta.cluster.<cluster>``."""

    def __init__(
        self,
        cluster: str,
        partitions: int = 3,
        session: str = "session-1",
        start_ms: int = BASE_MS,
        prefix: str = "kubedelta.cluster",
    ) -> None:
        self.cluster = cluster
        self.topic = topic_for(cluster, prefix)
        self.partitions = partitions
        self.session = session
        self.seq = 0
        self.clock_ms = start_ms
        self.next_offset: dict[int, int] = defaultdict(int)

    def _record(self, partition: int, key: bytes | None, value: bytes | None) -> SourceRecord:
        offset = self.next_offset[partition]
        self.next_offset[partition] = offset + 1
        return SourceRecord(self.topic, partition, offset, key, value, self.clock_ms)

    def _tick(self, event_ms: int | None) -> int:
        self.clock_ms = event_ms if event_ms is not None else self.clock_ms + 1
        self.seq += 1
        return self.clock_ms

    def partition_of(
        self, name: str, ns: str = "default", kind: str = "Pod", group: str = ""
    ) -> int:
        return partition_for(
            ResourceKey(group, "v1", kind, ns, name).identity_bytes(), self.partitions
        )

    def upsert(
        self,
        name: str,
        rv: str,
        *,
        ns: str = "default",
        kind: str = "Pod",
        group: str = "",
        labels: Mapping[str, str] | None = None,
        owners: tuple[str, ...] = (),
        app: str = "",
        uid: str | None = None,
        event_ms: int | None = None,
        encoding: BodyEncoding = BodyEncoding.JSON,
        cluster: str | None = None,
        extra: str = "",
    ) -> SourceRecord:
        key = ResourceKey(group, "v1", kind, ns, name)
        obj = {
            "apiVersion": key.api_version,
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": uid or f"uid-{name}",
                "resourceVersion": rv,
                "labels": dict(labels or {}),
            },
            "spec": {"extra": extra},
        }
        delta = Delta(
            op=Op.UPSERT,
            cluster=cluster or self.cluster,
            key=key,
            uid=uid or f"uid-{name}",
            resource_version=rv,
            seq=self.seq + 1,
            session=self.session,
            event_time_ms=self._tick(event_ms),
            labels=dict(labels or {}),
            owners=owners,
            app=app,
            body_encoding=encoding,
            body=encode_object(obj, encoding),
        )
        return self._record(
            partition_for(key.identity_bytes(), self.partitions),
            key.identity_bytes(),
            encode(delta),
        )

    def delete(
        self,
        name: str,
        *,
        ns: str = "default",
        kind: str = "Pod",
        group: str = "",
        event_ms: int | None = None,
    ) -> SourceRecord:
        key = ResourceKey(group, "v1", kind, ns, name)
        delta = Delta(
            op=Op.DELETE,
            cluster=self.cluster,
            key=key,
            seq=self.seq + 1,
            session=self.session,
            event_time_ms=self._tick(event_ms),
        )
        return self._record(
            partition_for(key.identity_bytes(), self.partitions),
            key.identity_bytes(),
            encode(delta),
        )

    def tombstone(
        self, name: str, *, ns: str = "default", kind: str = "Pod", group: str = ""
    ) -> SourceRecord:
        key = ResourceKey(group, "v1", kind, ns, name)
        self.clock_ms += 1
        return self._record(
            partition_for(key.identity_bytes(), self.partitions), key.identity_bytes(), None
        )

    def relist(
        self,
        op: Op,
        partition: int,
        relist_id: str,
        *,
        full: bool = True,
        kind: str = "Pod",
        group: str = "",
    ) -> SourceRecord:
        delta = Delta(
            op=op,
            cluster=self.cluster,
            key=ResourceKey(group, "v1", kind, "", ""),
            seq=self.seq + 1,
            session=self.session,
            event_time_ms=self._tick(None),
            relist=RelistMarker(relist_id, full),
        )
        return self._record(partition, delta.kafka_key(), encode(delta))

    def digest(self, partition: int, count: int, digest_hash: int) -> SourceRecord:
        delta = Delta(
            op=Op.DIGEST,
            cluster=self.cluster,
            key=ResourceKey("", "", "", "", ""),
            seq=self.seq + 1,
            session=self.session,
            event_time_ms=self._tick(None),
            digest=DigestMarker(partition, count, digest_hash),
        )
        return self._record(partition, delta.kafka_key(), encode(delta))

    def raw(
        self, partition: int, value: bytes | None, key: bytes | None = b"garbage"
    ) -> SourceRecord:
        return self._record(partition, key, value)


def body_of(raw: bytes | None) -> dict[str, object]:
    assert raw is not None
    obj: dict[str, object] = orjson.loads(raw)
    return obj

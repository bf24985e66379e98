"""Build the Kafka records of one cluster's topic. Pure code.

Every record gets the next sequence number of this producer session; each
record also carries the monotonic time its cause was observed, so the sink can
measure watch event -> Kafka acknowledgement.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deltas import (
    BodyEncoding,
    Delta,
    DigestMarker,
    Op,
    RelistMarker,
    ResourceKey,
    encode,
)
from deltas.codec import UpsertEncoder
from deltas.index_fields import MONIKER_APP, labels_of


@dataclass(slots=True, init=False)
class OutRecord:
    """One record waiting for Kafka. ``value`` None is a tombstone."""

    partition: int
    key: bytes
    value: bytes | None
    seq: int  #: session sequence number (tombstones share their DELETE's)
    observed: float  #: time.monotonic() when the cause was observed
    kind_label: str  #: metrics label
    op: str  #: metrics label: upsert, delete, tombstone, relist, digest
    size: int  #: key + value + 16 bytes, what the sink's buffer counts

    # Written out: the generated __init__ plus a __post_init__ call for ``size``
    # were two Python calls per record.
    def __init__(
        self,
        partition: int,
        key: bytes,
        value: bytes | None,
        seq: int,
        observed: float,
        kind_label: str,
        op: str,
    ) -> None:
        self.partition = partition
        self.key = key
        self.value = value
        self.seq = seq
        self.observed = observed
        self.kind_label = kind_label
        self.op = op
        self.size = len(key) + (len(value) if value is not None else 0) + 16


def index_fields(meta: Mapping[str, Any]) -> tuple[dict[str, str], tuple[str, ...], str]:
    """(labels, owner uids, app) of an object's metadata for the record header: what
    ``deltas.index_fields`` lifts, without copying labels that are already all strings."""
    labels = meta.get("labels")
    if not labels:
        labels = {}
    elif type(labels) is dict:
        for k, v in labels.items():
            if type(k) is not str or type(v) is not str:
                labels = labels_of({"metadata": meta})
                break
    else:
        labels = labels_of({"metadata": meta})
    refs = meta.get("ownerReferences")
    # A list, not a generator, into tuple(): a generator costs ~0.3 us per object.
    owners = tuple([str(o.get("uid", "")) for o in refs if o.get("uid")]) if refs else ()
    annotations = meta.get("annotations")
    app = str(annotations.get(MONIKER_APP, "")) if annotations else ""
    return labels, owners, app


def new_session_id() -> str:
    """Random per process start: consumers tell producer incarnations apart by it."""
    return secrets.token_hex(8)


class RecordFactory:
    """Turns changes of one cluster into encoded records with increasing ``seq``."""

    def __init__(self, cluster: str, partitions: int, session: str) -> None:
        self.cluster = cluster
        self.partitions = partitions
        self.session = session
        self._seq = 0
        self._encoders: dict[tuple[str, str, str], UpsertEncoder] = {}

    @property
    def last_seq(self) -> int:
        return self._seq

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    def upsert_encoder(self, group: str, version: str, kind: str) -> UpsertEncoder:
        """The UPSERT encoder of one kind (kind-level fields checked and packed once)."""
        encoder = self._encoders.get((group, version, kind))
        if encoder is None:
            encoder = UpsertEncoder(self.cluster, self.session, group, version, kind)
            self._encoders[(group, version, kind)] = encoder
        return encoder

    def upsert(
        self,
        key: ResourceKey,
        key_bytes: bytes,
        partition: int,
        obj: Mapping[str, Any],
        body: bytes,
        resource_version: str,
        observed: float,
        kind_label: str,
    ) -> OutRecord:
        """The UPSERT of a (stripped) object given as a dict."""
        meta = obj.get("metadata") or {}
        labels, owners, app = index_fields(meta)
        return self.upsert_of(
            self.upsert_encoder(key.group, key.version, key.kind),
            key.namespace,
            key.name,
            key_bytes,
            partition,
            str(meta.get("uid") or ""),
            resource_version,
            labels,
            owners,
            app,
            body,
            observed,
            kind_label,
        )

    def upsert_of(
        self,
        encoder: UpsertEncoder,
        namespace: str,
        name: str,
        key_bytes: bytes,
        partition: int,
        uid: str,
        resource_version: str,
        labels: dict[str, str],
        owners: tuple[str, ...],
        app: str,
        body: bytes,
        observed: float,
        kind_label: str,
    ) -> OutRecord:
        """The UPSERT of an object of ``encoder``'s kind, its header fields lifted."""
        self._seq += 1
        seq = self._seq
        value = encoder.upsert(
            namespace,
            name,
            uid,
            resource_version,
            seq,
            time.time_ns() // 1_000_000,
            labels,
            owners,
            app,
            BodyEncoding.JSON,
            body,
        )
        return OutRecord(
            partition,
            key_bytes,
            value,
            seq,
            observed,
            kind_label,
            "upsert",
        )

    def delete(
        self,
        encoder: UpsertEncoder,
        namespace: str,
        name: str,
        key_bytes: bytes,
        partition: int,
        uid: str,
        resource_version: str,
        observed: float,
        kind_label: str,
    ) -> tuple[OutRecord, OutRecord]:
        """The DELETE delta of an object of ``encoder``'s kind, then a tombstone so
        compaction can drop the key."""
        self._seq += 1
        seq = self._seq
        value = encoder.delete(
            namespace, name, uid, resource_version, seq, time.time_ns() // 1_000_000
        )
        record = OutRecord(partition, key_bytes, value, seq, observed, kind_label, "delete")
        tombstone = OutRecord(partition, key_bytes, None, seq, observed, kind_label, "tombstone")
        return record, tombstone

    def relist_markers(
        self, group: str, version: str, kind: str, relist_id: str, start: bool, kind_label: str
    ) -> list[OutRecord]:
        """One RELIST_START or RELIST_END per partition (full=False: deletes are explicit)."""
        op = Op.RELIST_START if start else Op.RELIST_END
        key = ResourceKey(group, version, kind, "", "")
        now = time.monotonic()
        out = []
        for partition in range(self.partitions):
            seq = self._next()
            delta = Delta(
                op=op,
                cluster=self.cluster,
                key=key,
                seq=seq,
                session=self.session,
                event_time_ms=time.time_ns() // 1_000_000,
                relist=RelistMarker(relist_id, False),
            )
            out.append(
                OutRecord(
                    partition,
                    delta.kafka_key(),
                    encode(delta),
                    seq,
                    now,
                    kind_label,
                    "relist",
                )
            )
        return out

    def digest(self, partition: int, count: int, value: int) -> OutRecord:
        seq = self._next()
        delta = Delta(
            op=Op.DIGEST,
            cluster=self.cluster,
            key=ResourceKey("", "", "", "", ""),
            seq=seq,
            session=self.session,
            event_time_ms=time.time_ns() // 1_000_000,
            digest=DigestMarker(partition, count, value),
        )
        return OutRecord(
            partition,
            delta.kafka_key(),
            encode(delta),
            seq,
            time.monotonic(),
            "",
            "digest",
        )

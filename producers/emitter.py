"""Decide what to send for one kind: the reflector feeds it listed objects and watch
events; it strips, fingerprints, consults the ledger and hands records to the sink.
No I/O of its own (the sink is any object with ``submit``), so it tests without
a broker or an API server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

from deltas import ResourceKey, identity_bytes, partition_for
from producers.config import StripConfig
from producers.kinds import KindRef, NamespaceFilter
from producers.ledger import KindLedger
from producers.metrics import KindMetrics
from producers.records import OutRecord, RecordFactory
from producers.strip import body_of, fingerprint_of_body, resource_version_of, strip_object


class RecordSink(Protocol):
    def submit(self, record: OutRecord) -> None: ...


class KindEmitter:
    def __init__(
        self,
        ref: KindRef,
        ledger: KindLedger,
        factory: RecordFactory,
        sink: RecordSink,
        strip: StripConfig,
        namespaces: NamespaceFilter,
        metrics: KindMetrics,
    ) -> None:
        self.ref = ref
        self.ledger = ledger
        self._factory = factory
        self._sink = sink
        self._strip = strip
        self._namespaces = namespaces
        self._metrics = metrics
        self._partitions = factory.partitions
        self._relist_id = ""
        ledger.version = ref.version

    # -- relists ---------------------------------------------------------------------

    def begin_relist(self) -> str:
        """RELIST_START to every partition; objects not listed before ``end_relist`` vanish."""
        self._relist_id = secrets.token_hex(8)
        self.ledger.begin_relist()
        for record in self._factory.relist_markers(
            self.ref.group, self.ref.version, self.ref.kind, self._relist_id, True, self.ref.label
        ):
            self._sink.submit(record)
        return self._relist_id

    def listed(self, obj: dict[str, Any], observed: float) -> None:
        """One LIST item (the reflector counts them per page)."""
        self._upsert(obj, observed)

    def count_listed(self, count: int) -> None:
        self._metrics.listed.inc(count)

    def end_relist(self) -> int:
        """DELETE what vanished, then RELIST_END everywhere; returns the last seq used."""
        now = time.monotonic()
        ref = self.ref
        for gone in self.ledger.vanished():
            self._send_delete(gone.key, "", gone.resource_version, now)
        for record in self._factory.relist_markers(
            ref.group, ref.version, ref.kind, self._relist_id, False, ref.label
        ):
            self._sink.submit(record)
        self._metrics.objects.set(len(self.ledger))
        return self._factory.last_seq

    # -- watch events ----------------------------------------------------------------

    def event(self, event_type: str, obj: dict[str, Any], observed: float) -> None:
        if event_type == "DELETED":
            self._metrics.deleted.inc()
            meta = obj.get("metadata") or {}
            namespace = str(meta.get("namespace") or "")
            key = identity_bytes(
                self.ref.group, self.ref.kind, namespace, str(meta.get("name", ""))
            )
            entry = self.ledger.get(key)
            if entry is None:
                self._metrics.unknown_delete.inc()
                return
            self._send_delete(key, str(meta.get("uid") or ""), resource_version_of(obj), observed)
            self._metrics.objects.set(len(self.ledger))
            return
        if event_type == "ADDED":
            self._metrics.added.inc()
        else:
            self._metrics.modified.inc()
        self._upsert(obj, observed)

    def forget_all(self) -> int:
        """The kind left the cluster (CRD removed): delete every object it had."""
        now = time.monotonic()
        for key in self.ledger.snapshot_keys():
            entry = self.ledger.get(key)
            self._send_delete(key, "", entry.resource_version if entry else "", now)
        self._metrics.objects.set(0)
        return self._factory.last_seq

    # -- internals -------------------------------------------------------------------

    def _upsert(self, obj: dict[str, Any], observed: float) -> None:
        ref = self.ref
        meta = obj.get("metadata")
        if not isinstance(meta, dict) or not meta.get("name"):
            return  # not an object we can key
        namespace = str(meta.get("namespace") or "")
        if namespace and not self._namespaces.allows(namespace):
            self._metrics.filtered.inc()
            return
        name = str(meta["name"])
        key_bytes = identity_bytes(ref.group, ref.kind, namespace, name)
        strip_object(obj, group=ref.group, version=ref.version, kind=ref.kind, config=self._strip)
        body = body_of(obj)
        rv = resource_version_of(obj)
        fp = fingerprint_of_body(body, rv)
        if self.ledger.unchanged(key_bytes, fp):
            self._metrics.unchanged.inc()
            return
        partition = partition_for(key_bytes, self._partitions)
        record = self._factory.upsert(
            ResourceKey(ref.group, ref.version, ref.kind, namespace, name),
            key_bytes,
            partition,
            obj,
            body,
            fp,
            rv,
            observed,
            ref.label,
        )
        self.ledger.record_upsert(key_bytes, fp, rv)
        self._sink.submit(record)
        self._metrics.sent_upsert.inc()

    def _send_delete(
        self, key_bytes: bytes, uid: str, resource_version: str, observed: float
    ) -> None:
        ref = self.ref
        group, kind = ref.group, ref.kind
        entry = self.ledger.record_delete(key_bytes)
        if entry is None:
            return
        # The key is (group, kind, namespace, name): recover namespace/name from it.
        _, _, namespace, name = key_bytes.decode().split("\x00")
        record, tombstone = self._factory.delete(
            ResourceKey(group, ref.version, kind, namespace, name),
            key_bytes,
            partition_for(key_bytes, self._partitions),
            uid,
            resource_version or entry.resource_version,
            observed,
            ref.label,
        )
        self._sink.submit(record)
        self._sink.submit(tombstone)
        self._metrics.sent_delete.inc()

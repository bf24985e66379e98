"""Decide what to send for one kind: the reflector feeds it listed objects and watch
events; it strips, fingerprints, consults the ledger and hands records to the sink.
No I/O of its own (the sink is any object with ``submit``), so it tests without
a broker or an API server.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Protocol

import msgspec
import orjson

from deltas import identity_bytes, partition_for
from deltas.codec import UpsertEncoder
from producers._speedups import shape as shape_fast
from producers.config import StripConfig
from producers.kinds import KindRef, NamespaceFilter
from producers.ledger import KindLedger
from producers.metrics import KindMetrics
from producers.records import OutRecord, RecordFactory
from producers.shape import (
    FastEvent,
    FastShaped,
    KindShaper,
    Members,
    Opened,
    members,
    resource_version_of_meta,
)
from producers.strip import fingerprint_of_body

#: An object as served: its raw JSON (a LIST item, a WATCH event's object), or a
#: dict (tests, and callers that already hold one: it is serialized first).
ServedObject = bytes | msgspec.Raw | dict[str, Any]


def _raw(obj: ServedObject) -> bytes | msgspec.Raw:
    return orjson.dumps(obj) if isinstance(obj, dict) else obj


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
        self._shaper = KindShaper(ref.group, ref.version, ref.kind, strip)
        #: producers/_speedups.c shapes the usual objects of most kinds (None: never).
        self._fast = self._shaper.fast_args()
        self._encoder: UpsertEncoder | None = None  #: made at the first record
        #: LIST items sent / found unchanged since the metrics were last updated: a
        #: relist counts them per page, not per object (a labelled Counter takes a lock).
        self._listed_sent = 0
        self._listed_unchanged = 0
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

    def listed(self, obj: ServedObject, observed: float) -> None:
        """One LIST item (the reflector counts them per page, and calls
        ``flush_counts`` after each page)."""
        raw = _raw(obj)
        fast = self._fast
        shaped = None if fast is None else shape_fast(raw, *fast)
        if shaped is not None:
            sent = self._upsert_shaped(shaped, observed)
        else:
            opened = self._shaper.open(raw)
            sent = None if opened is None else self._upsert(opened, observed)
        if sent:
            self._listed_sent += 1
        elif sent is not None:
            self._listed_unchanged += 1

    def count_listed(self, count: int) -> None:
        self._metrics.listed.inc(count)

    def flush_counts(self) -> None:
        """Add the LIST items handled since the last call to the metrics."""
        if self._listed_sent:
            self._metrics.sent_upsert.inc(self._listed_sent)
            self._listed_sent = 0
        if self._listed_unchanged:
            self._metrics.unchanged.inc(self._listed_unchanged)
            self._listed_unchanged = 0

    def end_relist(self) -> int:
        """DELETE what vanished, then RELIST_END everywhere; returns the last seq used."""
        self.flush_counts()
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

    def event(self, event_type: str, obj: ServedObject, observed: float) -> str:
        """One WATCH event (ADDED, MODIFIED, DELETED); returns the object's
        resourceVersion ("" if it has none), where the watch resumes."""
        fields = members(_raw(obj))
        return self.event_members(event_type, {} if fields is None else fields, observed)

    def event_members(self, event_type: str, fields: Members, observed: float) -> str:
        """``event`` of an object already split into its members (which it takes over)."""
        meta = members(fields.pop("metadata")) if "metadata" in fields else None
        return self.event_split(event_type, fields, meta, observed)

    def event_split(
        self, event_type: str, fields: Members, meta: Members | None, observed: float
    ) -> str:
        """``event`` of an object split into its members but metadata, and metadata
        into its fields (None: absent or not an object); takes both over."""
        opened = self._shaper.open_split(fields, meta)
        rv = resource_version_of_meta(meta) if opened is None else opened.resource_version
        if event_type == "DELETED":
            if opened is None:
                self._metrics.deleted.inc()
                self._metrics.unknown_delete.inc()
            else:
                self._delete_event(opened.namespace, opened.name, opened.text("uid"), rv, observed)
            return rv
        sent = None if opened is None else self._upsert(opened, observed)
        self._count_upsert_event(event_type, sent)
        return rv

    def _delete_event(self, namespace: str, name: str, uid: str, rv: str, observed: float) -> None:
        """A DELETED event of an object with this identity (Python and C paths)."""
        self._metrics.deleted.inc()
        key = identity_bytes(self.ref.group, self.ref.kind, namespace, name)
        if key not in self.ledger:
            self._metrics.unknown_delete.inc()
            return
        self._send_delete(key, uid, rv, observed)
        self._metrics.objects.set(len(self.ledger))

    def _count_upsert_event(self, event_type: str, sent: bool | None) -> None:
        """An ADDED or MODIFIED event handled: ``sent`` as ``_upsert`` returns it."""
        if event_type == "ADDED":
            self._metrics.added.inc()
        else:
            self._metrics.modified.inc()
        if sent:
            self._metrics.sent_upsert.inc()
        elif sent is not None:
            self._metrics.unchanged.inc()

    @property
    def fast_args(self) -> tuple[bytes, bytes, bool] | None:
        """The kind's arguments after the line to ``producers._speedups.shape_event``
        (None: the C code does not shape this kind)."""
        return self._fast

    def event_shaped(self, shaped: FastEvent, observed: float) -> str:
        """``event`` of an ADDED, MODIFIED or DELETED event the C code shaped; returns
        the object's resourceVersion."""
        event_type = shaped[0]
        rv = shaped[4]
        if event_type == "DELETED":
            self._delete_event(shaped[2], shaped[3], shaped[5], rv, observed)
            return rv
        self._count_upsert_event(event_type, self._upsert_shaped(shaped[1:], observed))
        return rv

    def forget_all(self) -> int:
        """The kind left the cluster (CRD removed): delete every object it had."""
        now = time.monotonic()
        for key in self.ledger.snapshot_keys():
            entry = self.ledger.get(key)
            self._send_delete(key, "", entry.resource_version if entry else "", now)
        self._metrics.objects.set(0)
        return self._factory.last_seq

    # -- internals -------------------------------------------------------------------

    def _upsert(self, opened: Opened, observed: float) -> bool | None:
        """Send the object unless the topic already has its content: True sent, False
        unchanged, None not sent for another reason (filtered namespace)."""
        namespace = opened.namespace
        if namespace and not self._namespaces.allows(namespace):
            self._metrics.filtered.inc()
            return None
        body, rv, uid, labels, owners, app = self._shaper.finish(opened)
        return self._send_upsert(
            namespace, opened.name, body, rv, uid, labels, owners, app, observed
        )

    def _upsert_shaped(self, shaped: FastShaped, observed: float) -> bool | None:
        """``_upsert`` of an object the C code shaped."""
        body, namespace, name, rv, uid, labels, owners, app = shaped
        if namespace and not self._namespaces.allows(namespace):
            self._metrics.filtered.inc()
            return None
        return self._send_upsert(namespace, name, body, rv, uid, labels, owners, app, observed)

    def _send_upsert(
        self,
        namespace: str,
        name: str,
        body: bytes,
        rv: str,
        uid: str,
        labels: dict[str, str],
        owners: tuple[str, ...],
        app: str,
        observed: float,
    ) -> bool:
        """The initial sync runs this for every object of the cluster: keep it lean."""
        ref = self.ref
        key_bytes = identity_bytes(ref.group, ref.kind, namespace, name)
        fp = fingerprint_of_body(body, rv)
        ledger = self.ledger
        if ledger.unchanged(key_bytes, fp):
            return False
        partition = partition_for(key_bytes, self._partitions)
        record = self._factory.upsert_of(
            self._encoder or self._kind_encoder(),
            namespace,
            name,
            key_bytes,
            partition,
            uid,
            rv,
            labels,
            owners,
            app,
            body,
            observed,
            ref.label,
        )
        ledger.record_upsert(key_bytes, fp, rv, partition)
        self._sink.submit(record)
        return True

    def _kind_encoder(self) -> UpsertEncoder:
        ref = self.ref
        encoder = self._encoder = self._factory.upsert_encoder(ref.group, ref.version, ref.kind)
        return encoder

    def _send_delete(
        self, key_bytes: bytes, uid: str, resource_version: str, observed: float
    ) -> None:
        entry = self.ledger.record_delete(key_bytes)
        if entry is None:
            return
        # The key is (group, kind, namespace, name): recover namespace/name from it.
        _, _, namespace, name = key_bytes.decode().split("\x00")
        record, tombstone = self._factory.delete(
            self._encoder or self._kind_encoder(),
            namespace,
            name,
            key_bytes,
            partition_for(key_bytes, self._partitions),
            uid,
            resource_version or entry.resource_version,
            observed,
            self.ref.label,
        )
        self._sink.submit(record)
        self._sink.submit(tombstone)
        self._metrics.sent_delete.inc()

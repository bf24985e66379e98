"""Plan a batch of Kafka records into one RocksDB WriteBatch (no writes here).

Three passes over the batch:

1. **validate** each record in log order: skip what is below the stored offset,
   decode the header (only the header), reject bad records (undecodable, cluster
   id != topic's cluster, producer sequence going backwards, Kafka key != the
   record's identity, ...), convert MSGPACK bodies to JSON;
2. **read** the stored meta of every object the batch touches with one multi-get
   (never the bodies: every version is written once, forward, see ``_upsert``),
   except the keys the known-keys filter says the store cannot hold (new objects);
3. **apply** in log order against an overlay (object key -> meta as of this point
   of the batch), so several records for one key chain correctly; emit objects,
   index diffs, digest/count updates, history, change feed entries; run relist
   sweeps and digest checks at their point of the log.

Everything the plan changes in the writer's in-memory state goes into a
:class:`StateUpdate` that :meth:`View.commit` applies after the write succeeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgpack
import orjson
from rocksdict import WriteBatch

from deltas.codec import FORMAT_VERSION, PREFIX_SIZE, decode_header
from deltas.digest import item_hash
from deltas.errors import DeltaFormatError
from deltas.keys import cluster_from_topic, parse_identity
from deltas.model import BodyEncoding, Op
from store import layout as L
from store._speedups import write_new_object, write_replacement
from store.db import Handles, multi_get
from store.known import KnownKeys
from store.options import StoreOptions
from store.reads import scan
from store.records import DigestVerdict, Rejected, SourceRecord
from store.state import NO_RELIST, ClusterMeta, RelistState, StateUpdate, WriterState
from store.values import ApplyResult

_MASK = 2**64 - 1
_UPSERT = Op.UPSERT
_DELETE = Op.DELETE
_TOMBSTONE = 0  # work kind for a Kafka tombstone (no header)
_OP_UPSERT = int(Op.UPSERT)
_OP_DELETE = int(Op.DELETE)
_MSGPACK = BodyEncoding.MSGPACK


@dataclass(slots=True)
class ApplyPlan:
    """The writes of one batch, ready to commit. Inspect ``rejected`` (send them to the
    dead-letter topic) before or after committing; the commit stores their offsets too."""

    rejected: list[Rejected]
    result: ApplyResult  #: what the commit will report
    batch: WriteBatch
    update: StateUpdate
    base_version: int  #: the view's commit counter this plan was computed against
    records: int  #: records in the batch
    stats: dict[str, float] = field(default_factory=dict)


class TopicClusters:
    """topic -> cluster (or the reason it is not a cluster topic), memoized."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._cache: dict[str, tuple[str | None, str]] = {}

    def get(self, topic: str) -> tuple[str | None, str]:
        hit = self._cache.get(topic)
        if hit is None:
            try:
                hit = (cluster_from_topic(topic, self._prefix), "")
            except DeltaFormatError as exc:
                hit = (None, f"not a cluster topic: {exc}")
            self._cache[topic] = hit
        return hit


class Planner:
    """Plans one batch. Single use: ``Planner(...).plan(records)``."""

    def __init__(
        self,
        handles: Handles,
        state: WriterState,
        opts: StoreOptions,
        topics: TopicClusters,
        now_ms: int,
        base_version: int,
        known: KnownKeys | None = None,
    ) -> None:
        self.h = handles
        self.known = known  #: the keys the store may hold; None: read every key
        self.st = state
        self.opts = opts
        self.topics = topics
        self.now_ms = now_ms
        self.base_version = base_version
        self.batch = WriteBatch(raw_mode=True)
        self.up = StateUpdate(feed_next=state.feed_next, feed_first=state.feed_first)
        self.rejected: list[Rejected] = []
        self.verdicts: list[DigestVerdict] = []
        self.overlay: dict[bytes, bytes | None] = {}  # objkey -> meta (None: absent)
        self.kind_delta: dict[tuple[str, str, str], int] = {}
        self.touched: dict[str, list[int]] = {}  # cluster -> [max event ms, max record ms]
        self.feed: list[tuple[int, int, bytes, str]] = []  # this commit's change-feed entry
        self.unchanged = 0
        self.changes = 0
        self.keep_history = opts.history_retention_s > 0
        self.history_cutoff = now_ms - opts.history_retention_s * 1000
        hd = handles.handles
        self.h_objmeta = hd[L.CF_OBJMETA]
        self.h_label = hd[L.CF_IDX_LABEL]
        self.h_owner = hd[L.CF_IDX_OWNER]
        self.h_app = hd[L.CF_IDX_APP]
        self.h_versions = hd[L.CF_VERSIONS]
        self.h_expiry = hd[L.CF_HISTORY_EXPIRY]
        self.h_changes = hd[L.CF_CHANGES]
        self.h_meta = hd[L.CF_META]
        self.new_object_cfs = (
            self.h_versions,
            self.h_objmeta,
            self.h_label,
            self.h_owner,
            self.h_app,
        )
        self.replacement_cfs = (self.h_versions, self.h_objmeta, self.h_expiry)
        #: write_replacement's history setting: versions ended before it are deleted
        self.replacement_cutoff = self.history_cutoff if self.keep_history else None

    # -- pass 1: validate ----------------------------------------------------------------

    def _reject(self, rec: SourceRecord, reason: str) -> None:
        self.rejected.append(Rejected(rec, reason))

    def _validate(self, records: Sequence[SourceRecord]) -> tuple[list[tuple[Any, ...]], int]:
        """Work items in log order: (op, record, header, objkey, cluster, body).

        Records arrive in runs of one partition (a consumer poll is grouped by partition),
        so the per-partition state (next offset, cluster, producer session) is looked up
        once per run and written back when the run ends.
        """
        work: list[tuple[Any, ...]] = []
        append = work.append
        skipped = 0
        up_offsets = self.up.offsets
        offsets = self.st.offsets
        up_sessions = self.up.sessions
        sessions = self.st.sessions
        max_body = self.opts.max_body_bytes
        reject = self._reject
        run_topic: str | None = None
        run_part = -1
        nxt = 0
        cluster: str | None = None
        why = ""
        cut = 0
        sess: tuple[str, int] | None = None
        sess_dirty = False
        for rec in records:
            part = rec.partition
            if part != run_part or rec.topic != run_topic:
                if run_topic is not None:
                    up_offsets[(run_topic, run_part)] = nxt
                    if sess_dirty and sess is not None:
                        up_sessions[(cluster, run_part)] = sess  # type: ignore[index]
                run_topic, run_part = rec.topic, part
                tp = (run_topic, part)
                got = up_offsets.get(tp)
                nxt = got if got is not None else offsets.get(tp, 0)
                cluster, why = self.topics.get(run_topic)
                cut = len(cluster) + 1 if cluster is not None else 0
                sess = up_sessions.get((cluster, part)) or sessions.get((cluster, part))  # type: ignore[arg-type]
                sess_dirty = False
            if rec.offset < nxt:
                skipped += 1
                continue
            nxt = rec.offset + 1
            if cluster is None:
                reject(rec, why)
                continue
            value = rec.value
            if value is None:
                self._validate_tombstone(rec, cluster, work)
                continue
            try:
                h = decode_header(value, max_body=max_body)
            except DeltaFormatError as exc:
                reject(rec, f"undecodable record: {exc}")
                continue
            if h.cluster != cluster:
                reject(
                    rec,
                    f"cluster id {h.cluster!r} in the record does not match the topic's "
                    f"cluster {cluster!r} (topic {rec.topic!r})",
                )
                continue
            op = h.op
            body: bytes | None = None
            if op is _UPSERT or op is _DELETE:
                # The C decoder builds the key from the header's strings (cluster ==
                # h.cluster, checked above); the Python decoder's headers lack it.
                objkey = h.__dict__.get("_objkey")
                if objkey is None:
                    k = h.key
                    objkey = (
                        f"{cluster}\x00{k.group}\x00{k.kind}\x00{k.namespace}\x00{k.name}"
                    ).encode()
                if rec.key is not None and rec.key != objkey[cut:]:
                    reject(rec, f"Kafka key {rec.key!r} does not match the record's identity")
                    continue
                if op is _UPSERT and h.body_encoding is _MSGPACK:
                    # JSON bodies stay inside the record value (body None): _upsert
                    # copies header and body out of it in one slice.
                    try:
                        body = orjson.dumps(msgpack.unpackb(value[h.body_offset :], raw=False))
                    except Exception as exc:  # msgpack/orjson raise many types
                        reject(rec, f"MSGPACK body cannot be converted to JSON: {exc}")
                        continue
            else:
                objkey = b""
                if op is Op.DIGEST:
                    assert h.digest is not None
                    if h.digest.partition != part:
                        reject(
                            rec,
                            f"DIGEST describes partition {h.digest.partition} but arrived on "
                            f"partition {part}",
                        )
                        continue
            session = h.session
            if session:
                if sess is not None and sess[0] == session and h.seq <= sess[1]:
                    reject(
                        rec,
                        f"producer sequence went backwards: seq {h.seq} <= last seq {sess[1]} "
                        f"of session {session!r} on partition {part}",
                    )
                    continue
                sess = (session, h.seq)
                sess_dirty = True
            append((op, rec, h, objkey, cluster, body))
        if run_topic is not None:
            up_offsets[(run_topic, run_part)] = nxt
            if sess_dirty and sess is not None:
                up_sessions[(cluster, run_part)] = sess  # type: ignore[index]
        return work, skipped

    def _validate_tombstone(
        self, rec: SourceRecord, cluster: str, work: list[tuple[Any, ...]]
    ) -> None:
        key = rec.key
        if key is None:
            self._reject(rec, "tombstone (null value) without a key")
            return
        if key[:1] == b"\xff":
            work.append((None, rec, None, b"", cluster, None))  # compaction of a control key
            return
        try:
            parse_identity(key)
        except DeltaFormatError as exc:
            self._reject(rec, f"tombstone key is not a resource identity: {exc}")
            return
        work.append((_TOMBSTONE, rec, None, cluster.encode() + L.SEP + key, cluster, None))

    # -- pass 2: read ----------------------------------------------------------------------

    def _read(self, work: list[tuple[Any, ...]]) -> None:
        keys = list({w[3]: None for w in work if w[3]})
        if not keys:
            return
        overlay: dict[bytes, bytes | None] = {}
        if self.known is not None:
            # Keys the store cannot hold are new objects: no read (store/known.py).
            keys, new = self.known.split(keys)
            overlay = dict.fromkeys(new)
        if keys:
            overlay.update(zip(keys, multi_get(self.h.cfs[L.CF_OBJMETA], keys), strict=True))
        self.overlay = overlay

    # -- pass 3: apply -----------------------------------------------------------------------

    def plan(self, records: Sequence[SourceRecord]) -> ApplyPlan:
        work, skipped = self._validate(records)
        self._read(work)
        applied = len(work)
        touched = self.touched
        upsert = self._upsert
        last_cluster = None
        t = [0, 0]
        for op, rec, h, objkey, cluster, body in work:
            if cluster is not last_cluster:
                last_cluster = cluster
                t = touched.get(cluster) or touched.setdefault(cluster, [0, 0])
            if rec.timestamp_ms > t[1]:
                t[1] = rec.timestamp_ms
            if op is _UPSERT:
                if h.event_time_ms > t[0]:
                    t[0] = h.event_time_ms
                upsert(rec, h, objkey, cluster, body)
            elif op is _DELETE:
                if h.event_time_ms > t[0]:
                    t[0] = h.event_time_ms
                if not self._delete(objkey, cluster, h.event_time_ms, rec.offset):
                    self.unchanged += 1
            elif op is _TOMBSTONE:
                if not self._delete(objkey, cluster, rec.timestamp_ms, rec.offset):
                    self.unchanged += 1
            elif op is None:
                self.unchanged += 1
            else:
                if h.event_time_ms > t[0]:
                    t[0] = h.event_time_ms
                self._control(rec, h, cluster)
        self._prune_history()
        if self.feed:
            self.batch.put(L.be64(self.up.feed_next), L.pack_changes(self.feed), self.h_changes)
            self.up.feed_next += len(self.feed)
            self.changes = len(self.feed)
        self._prune_changes()
        self._finish_meta()
        result = ApplyResult(
            applied=applied,
            skipped=skipped,
            rejected=len(self.rejected),
            unchanged=self.unchanged,
            changes=self.changes,
            digest_verdicts=self.verdicts,
            offsets=dict(self.up.offsets),
            rejections=tuple(self.rejected),
        )
        return ApplyPlan(
            rejected=self.rejected,
            result=result,
            batch=self.batch,
            update=self.up,
            base_version=self.base_version,
            records=len(records),
        )

    def _digest(self, cluster: str, partition: int) -> list[int]:
        key = (cluster, partition)
        d = self.up.digests.get(key)
        if d is None:
            c, hsh = self.st.digests.get(key, (0, 0))
            d = self.up.digests[key] = [c, hsh]
        return d

    def _relist(self, key: tuple[str, int, str, str]) -> RelistState:
        rs = self.up.relists.get(key)
        if rs is None:
            rs = self.st.relists.get(key, NO_RELIST)
        return rs

    def _ended(self, objkey: bytes, old_meta: bytes, end_ms: int, new_key: bytes) -> None:
        """The version in ``old_meta`` stopped being current at ``end_ms``: it expires
        ``history_retention_s`` after that (at once if that is already past, or if no
        history is kept). ``new_key`` is the version that replaces it (b"" for none)."""
        hkey = L.version_key(objkey, old_meta)
        if hkey == new_key:  # same start ms and offset (a repartitioned topic): overwritten
            return
        if not self.keep_history or end_ms < self.history_cutoff:
            self.batch.delete(hkey, self.h_versions)
        else:
            self.batch.put(L.be64(end_ms) + hkey, b"", self.h_expiry)

    def _upsert(
        self, rec: SourceRecord, h: Any, objkey: bytes, cluster: str, body: bytes | None
    ) -> None:
        part = rec.partition
        k = h.key
        rk = (cluster, part, k.group, k.kind)
        rs = self.up.relists.get(rk)
        if rs is None:
            rs = self.st.relists.get(rk, NO_RELIST)
        gen = rs.gen
        overlay = self.overlay
        old = overlay.get(objkey)
        value = rec.value
        assert value is not None
        if old is None:
            # A new object: its writes in C (store/_speedups.c, the same bytes as below).
            written = write_new_object(
                self.batch.put,
                self.new_object_cfs,
                value,
                h.body_offset,
                objkey,
                cluster,
                part,
                rec.offset,
                h.event_time_ms,
                gen,
                L.FLAG_CONVERTED if h.body_encoding is _MSGPACK else 0,
                body,
                h.labels_source,  # the header's bytes: no str objects for the labels
                h.owners,
                h.app,
                h.resource_version,
            )
            if written is not None:
                ih, overlay[objkey] = written
                d = self._digest(cluster, part)
                d[0] += 1
                d[1] = (d[1] + ih) & _MASK
                kk = (cluster, k.group, k.kind)
                self.kind_delta[kk] = self.kind_delta.get(kk, 0) + 1
                self.feed.append((_OP_UPSERT, h.event_time_ms, objkey, h.resource_version))
                return
        flags = L.FLAG_CONVERTED if h.body_encoding is _MSGPACK else 0
        batch = self.batch
        if old is not None:
            # A changed object: its writes in C too, unless it may be unchanged (same
            # item hash and partition), which the Python path below decides.
            replaced = write_replacement(
                batch.put,
                batch.delete,
                self.replacement_cfs,
                value,
                h.body_offset,
                objkey,
                cluster,
                part,
                rec.offset,
                h.event_time_ms,
                gen,
                flags,
                body,
                h.resource_version,
                old,
                self.replacement_cutoff,
            )
            if replaced is not None:
                ih, meta, o_ih, o_part, index_unchanged = replaced
                if not index_unchanged:
                    self._reindex(objkey, cluster, L.header_fields(old), h)
                self._rehash(cluster, part, ih, o_part, o_ih)
                overlay[objkey] = meta
                self.feed.append((_OP_UPSERT, h.event_time_ms, objkey, h.resource_version))
                return
        ident = objkey[len(cluster) + 1 :]
        ih = item_hash(ident, h.resource_version)
        old_fields: list[Any] | None = None
        if old is not None:
            _s, o_flags, o_wire, o_part, o_off, o_ih, o_ev, o_gen = L.META.unpack_from(old)
            if o_ih == ih and o_part == part:
                old_fields = L.header_fields(old)
                if old_fields[L.H_UID] == h.uid:
                    if o_gen != gen:  # re-asserted by a relist: restamp the meta only
                        meta = (
                            L.META.pack(
                                L.SCHEMA_VERSION, o_flags, o_wire, part, o_off, ih, o_ev, gen
                            )
                            + old[L.META_SIZE :]
                        )
                        batch.put(objkey, meta, self.h_objmeta)
                        overlay[objkey] = meta
                    self.unchanged += 1
                    return
        prefix = L.META.pack(
            L.SCHEMA_VERSION, flags, FORMAT_VERSION, part, rec.offset, ih, h.event_time_ms, gen
        )
        header = value[PREFIX_SIZE : h.body_offset]
        meta = prefix + header
        # The version is written once, forward, keyed by its start: it is the current body
        # now and becomes history when replaced, with no read of the old body ever.
        vkey = L.history_key(objkey, h.event_time_ms, rec.offset)
        hist = L.HIST.pack(L.HIST_VERSION, len(meta))
        if body is None:  # JSON on the wire: header and body are the value's tail
            batch.put(vkey, hist + prefix + value[PREFIX_SIZE:], self.h_versions)
        else:
            batch.put(vkey, hist + meta + body, self.h_versions)
        batch.put(objkey, meta, self.h_objmeta)
        labels = h.labels
        owners = h.owners
        app = h.app
        esc = L.esc
        if old is None:
            if L.plain(labels, owners, app):  # no NUL/0x01 anywhere: esc() is the identity
                hl = self.h_label
                for lk, lv in labels.items():
                    batch.put(f"{lk}\x00{lv}\x00".encode() + objkey, b"", hl)
                for o in owners:
                    batch.put(f"{cluster}\x00{o}\x00".encode() + objkey, b"", self.h_owner)
                if app:
                    batch.put(f"{app}\x00".encode() + objkey, b"", self.h_app)
            else:
                for lk, lv in labels.items():
                    batch.put(esc(lk) + b"\x00" + esc(lv) + b"\x00" + objkey, b"", self.h_label)
                for o in owners:
                    batch.put(L.owner_prefix(cluster, o) + objkey, b"", self.h_owner)
                if app:
                    batch.put(esc(app) + b"\x00" + objkey, b"", self.h_app)
            d = self._digest(cluster, part)
            d[0] += 1
            d[1] = (d[1] + ih) & _MASK
            kk = (cluster, k.group, k.kind)
            self.kind_delta[kk] = self.kind_delta.get(kk, 0) + 1
        else:
            self._reindex(
                objkey, cluster, old_fields if old_fields is not None else L.header_fields(old), h
            )
            self._rehash(cluster, part, ih, o_part, o_ih)
            self._ended(objkey, old, h.event_time_ms, vkey)
        overlay[objkey] = meta
        self.feed.append((_OP_UPSERT, h.event_time_ms, objkey, h.resource_version))

    def _reindex(self, objkey: bytes, cluster: str, old_fields: list[Any], h: Any) -> None:
        """The index entries that differ between the stored header and ``h``."""
        batch = self.batch
        esc = L.esc
        labels, owners, app = h.labels, h.owners, h.app
        old_labels = old_fields[L.H_LABELS]
        if old_labels != labels:
            for lk, lv in old_labels.items():
                if labels.get(lk) != lv:
                    batch.delete(esc(lk) + b"\x00" + esc(lv) + b"\x00" + objkey, self.h_label)
            for lk, lv in labels.items():
                if old_labels.get(lk) != lv:
                    batch.put(esc(lk) + b"\x00" + esc(lv) + b"\x00" + objkey, b"", self.h_label)
        old_owners = old_fields[L.H_OWNERS]
        if tuple(old_owners) != owners:
            cb = cluster.encode()
            for o in set(old_owners) - set(owners):
                batch.delete(cb + b"\x00" + esc(o) + b"\x00" + objkey, self.h_owner)
            for o in set(owners) - set(old_owners):
                batch.put(cb + b"\x00" + esc(o) + b"\x00" + objkey, b"", self.h_owner)
        old_app = old_fields[L.H_APP]
        if old_app != app:
            if old_app:
                batch.delete(esc(old_app) + b"\x00" + objkey, self.h_app)
            if app:
                batch.put(esc(app) + b"\x00" + objkey, b"", self.h_app)

    def _rehash(self, cluster: str, part: int, ih: int, o_part: int, o_ih: int) -> None:
        """A replaced object's item hash in its partition's digest."""
        if o_part == part:
            d = self._digest(cluster, part)
            d[1] = (d[1] - o_ih + ih) & _MASK
        else:  # the topic was repartitioned: the object now counts in another partition
            d = self._digest(cluster, o_part)
            d[0] -= 1
            d[1] = (d[1] - o_ih) & _MASK
            d = self._digest(cluster, part)
            d[0] += 1
            d[1] = (d[1] + ih) & _MASK

    def _delete(self, objkey: bytes, cluster: str, event_ms: int, offset: int) -> bool:
        """Delete the object if present (as of this point of the batch); False if absent."""
        old = self.overlay.get(objkey)
        if old is None:
            return False
        _s, _f, _w, o_part, _o, o_ih, _ev, _g = L.META.unpack_from(old)
        fields = L.header_fields(old)
        batch = self.batch
        esc = L.esc
        for lk, lv in fields[L.H_LABELS].items():
            batch.delete(esc(lk) + b"\x00" + esc(lv) + b"\x00" + objkey, self.h_label)
        if fields[L.H_OWNERS]:
            cb = cluster.encode()
            for o in fields[L.H_OWNERS]:
                batch.delete(cb + b"\x00" + esc(o) + b"\x00" + objkey, self.h_owner)
        if fields[L.H_APP]:
            batch.delete(esc(fields[L.H_APP]) + b"\x00" + objkey, self.h_app)
        d = self._digest(cluster, o_part)
        d[0] -= 1
        d[1] = (d[1] - o_ih) & _MASK
        _c, group, kind, _ns, _n = L.split_object_key(objkey)
        kk = (cluster, group, kind)
        self.kind_delta[kk] = self.kind_delta.get(kk, 0) - 1
        mark = L.history_key(objkey, event_ms, offset)
        self._ended(objkey, old, event_ms, mark)
        if self.keep_history and event_ms >= self.history_cutoff:
            # "gone since event_ms", expiring with it
            batch.put(mark, L.HIST.pack(L.HIST_DELETED, len(old)) + old, self.h_versions)
            batch.put(L.be64(event_ms) + mark, b"", self.h_expiry)
        batch.delete(objkey, self.h_objmeta)
        self.overlay[objkey] = None
        self.feed.append((_OP_DELETE, event_ms, objkey, ""))
        return True

    # -- control records -----------------------------------------------------------------

    def _cluster_meta(self, cluster: str) -> ClusterMeta:
        cm = self.up.clusters.get(cluster)
        if cm is None:
            cm = self.st.clusters.get(cluster, ClusterMeta())
        return cm

    def _control(self, rec: SourceRecord, h: Any, cluster: str) -> None:
        op = h.op
        part = rec.partition
        if op is Op.DIGEST:
            marker = h.digest
            d = self._digest(cluster, part)
            verdict = DigestVerdict(
                cluster, part, rec.offset, marker.count, marker.hash, d[0], d[1]
            )
            self.verdicts.append(verdict)
            cm = self._cluster_meta(cluster)
            self.up.clusters[cluster] = replace(
                cm,
                verdict=(part, rec.offset, marker.count, marker.hash, d[0], d[1]),
                checks=cm.checks + 1,
                mismatches=cm.mismatches + (0 if verdict.matches else 1),
            )
            return
        k = h.key
        rk = (cluster, part, k.group, k.kind)
        rs = self._relist(rk)
        marker = h.relist
        cm = self._cluster_meta(cluster)
        if op is Op.RELIST_START:
            opened = 0 if rs.open_id is not None else 1
            self.up.relists[rk] = RelistState(rs.gen + 1, marker.relist_id, marker.full)
            self.up.clusters[cluster] = replace(
                cm, state="syncing", open_relists=cm.open_relists + opened
            )
            return
        # RELIST_END: only the end of the relist in progress counts; a stale end (its start
        # was superseded by a newer relist after a producer restart) changes nothing.
        if rs.open_id is None or rs.open_id != marker.relist_id:
            self.unchanged += 1
            return
        if rs.full:
            self._sweep(cluster, part, k.group, k.kind, rs.gen, h.event_time_ms, rec.offset)
        self.up.relists[rk] = RelistState(rs.gen, None, rs.full)
        still_open = cm.open_relists - 1
        self.up.clusters[cluster] = replace(
            cm, state="syncing" if still_open > 0 else "synced", open_relists=still_open
        )

    def _sweep(
        self, cluster: str, part: int, group: str, kind: str, gen: int, event_ms: int, offset: int
    ) -> None:
        """Delete objects of (cluster, group, kind) on ``part`` that the full relist that
        just ended did not re-assert (their relist generation is older)."""
        prefix = f"{cluster}\x00{group}\x00{kind}\x00".encode()
        overlay = self.overlay
        victims: dict[bytes, None] = {}  # ordered set: deletes happen in key order
        unpack = L.META.unpack_from
        in_batch = [(k, m) for k, m in overlay.items() if m is not None and k.startswith(prefix)]
        for key, meta in scan(self.h.cfs[L.CF_OBJMETA], prefix):
            if key in overlay:
                continue  # the batch's own view of it is decided below
            fields = unpack(meta)
            if fields[3] == part and fields[7] != gen:
                victims[key] = None
                overlay[key] = meta
        for key, meta in in_batch:
            fields = unpack(meta)
            if fields[3] == part and fields[7] != gen:
                victims[key] = None
        for key in sorted(victims):
            self._delete(key, cluster, event_ms, offset)

    # -- retention -----------------------------------------------------------------------

    def _prune_history(self) -> None:
        if not self.keep_history:
            return
        cutoff = L.be64(max(self.history_cutoff, 0))
        last: bytes | None = None
        expired = scan(self.h.cfs[L.CF_HISTORY_EXPIRY], b"", self.st.expiry_floor or None)
        for n, (key, _) in enumerate(expired):
            if key[:8] >= cutoff or n >= self.opts.history_prune_per_commit:
                break
            self.batch.delete(key[8:], self.h_versions)
            self.batch.delete(key, self.h_expiry)
            last = key
        if last is not None:
            self.up.expiry_floor = last + b"\x00"

    def _prune_changes(self) -> None:
        """Drop whole commit entries once the feed exceeds retention by 10 %; the entry
        holding the oldest position to keep stays, so at least ``changes_retention`` remain."""
        keep = self.opts.changes_retention
        up = self.up
        excess = (up.feed_next - up.feed_first) - keep
        if excess < max(1, keep // 10):
            return
        wanted_first = up.feed_next - keep
        new_first = up.feed_first
        for key, _ in scan(self.h.cfs[L.CF_CHANGES], b"", L.be64(up.feed_first)):
            start = L.from_be64(key)
            if start > wanted_first:
                break
            new_first = start
        if new_first > up.feed_first:
            self.batch.delete_range(L.be64(up.feed_first), L.be64(new_first), self.h_changes)
            up.feed_first = new_first

    # -- metadata ------------------------------------------------------------------------

    def _finish_meta(self) -> None:
        up = self.up
        st = self.st
        put = self.batch.put
        hm = self.h_meta
        for (topic, p), nxt in up.offsets.items():
            put(L.partitioned_key(L.TAG_OFFSET, topic, p), L.be64(nxt), hm)
        for (c, p), sess in up.sessions.items():
            put(L.partitioned_key(L.TAG_SESSION, c, p), msgpack.packb(list(sess)), hm)
        for (c, p), d in up.digests.items():
            put(L.partitioned_key(L.TAG_DIGEST, c, p), msgpack.packb(d), hm)
        for (c, p, g, k), rs in up.relists.items():
            put(L.relist_meta_key(c, p, g, k), rs.pack(), hm)
        for kk, delta in self.kind_delta.items():
            total = st.kind_counts.get(kk, 0) + delta
            up.kind_counts[kk] = total
            put(L.kind_meta_key(*kk), msgpack.packb(total), hm)
        wall = L.be64(self.now_ms)
        for c, (event_ms, record_ms) in self.touched.items():
            cm = self._cluster_meta(c)
            cm = replace(
                cm, event_ms=max(cm.event_ms, event_ms), record_ms=max(cm.record_ms, record_ms)
            )
            up.clusters[c] = cm
        for c, cm in up.clusters.items():
            put(L.cluster_meta_key(L.TAG_CLUSTER, c), cm.pack(), hm)
            put(L.cluster_meta_key(L.TAG_WALL, c), wall, hm)
        if up.feed_next != st.feed_next or up.feed_first != st.feed_first:
            put(L.KEY_FEED, msgpack.packb([up.feed_next, up.feed_first]), hm)

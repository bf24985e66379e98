"""The read API, shared by the writer (:class:`store.View`) and secondaries
(:class:`store.ViewReader`). Every lookup is a point get, a multi-get or a bounded
prefix scan; nothing scans the whole store except :meth:`ViewReads.view_digest`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import msgpack
from rocksdict import Rdict, ReadOptions

from deltas.keys import topic_for
from deltas.model import Op
from store import layout as L
from store.db import Handles, multi_get
from store.options import StoreOptions
from store.records import DigestVerdict
from store.values import (
    Change,
    ClusterStatus,
    Item,
    Page,
    PartitionStatus,
    StoredObject,
)

#: Default and maximum page size of LIST-like calls.
DEFAULT_LIMIT = 500
MAX_LIMIT = 10_000


def scan(cf: Rdict, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) for keys starting with ``prefix``, from ``start`` (>= prefix) on."""
    ro = ReadOptions()
    end = L.prefix_end(prefix)
    if end is not None:
        ro.set_iterate_upper_bound(end)
    it = cf.iter(ro)
    it.seek(start if start is not None and start > prefix else prefix)
    try:
        while it.valid():
            key: bytes = it.key()
            if not key.startswith(prefix):
                return
            yield key, it.value()
            it.next()
    finally:
        del it


def _after(cursor: bytes | None) -> bytes | None:
    """Seek key strictly after ``cursor``: the smallest key greater than it."""
    return None if cursor is None else cursor + b"\x00"


#: Times a read follows an object to a newer state before giving up (each needs the
#: reader to catch up again between two lookups: more than twice is not seen).
_FOLLOW_ATTEMPTS = 4
#: Op by wire value: a dict lookup, where calling the enum class costs ~1 us per change
#: (8 % of a query service's CPU under 10,000 changes/s of feed).
_OP_BY_VALUE: dict[int, Op] = {int(op): op for op in Op}


def _limit(limit: int) -> int:
    return max(1, min(limit, MAX_LIMIT))


def decode_stored(objkey: bytes, meta: bytes, body: bytes) -> StoredObject:
    _schema, _flags, _wire, partition, offset, _ih, event_ms, _gen = L.META.unpack_from(meta)
    h = L.header_fields(meta)
    cluster, group, kind, namespace, name = L.split_object_key(objkey)
    return StoredObject(
        cluster=cluster,
        group=group,
        version=h[L.H_VERSION],
        kind=kind,
        namespace=namespace,
        name=name,
        uid=h[L.H_UID],
        resource_version=h[L.H_RV],
        seq=h[L.H_SEQ],
        session=h[L.H_SESSION],
        partition=partition,
        offset=offset,
        event_time_ms=event_ms,
        labels=h[L.H_LABELS],
        owners=tuple(h[L.H_OWNERS]),
        app=h[L.H_APP],
        body=body,
    )


def _item(objkey: bytes, body: bytes) -> Item:
    c, g, k, ns, n = L.split_object_key(objkey)
    return Item(c, g, k, ns, n, body)


class ViewReads:
    """Read methods over an open store. Subclasses set ``_h`` and ``_opts``."""

    _h: Handles
    _opts: StoreOptions

    # -- objects -------------------------------------------------------------------------

    def get(self, cluster: str, group: str, kind: str, namespace: str, name: str) -> bytes | None:
        """The object's JSON bytes exactly as stored, or None."""
        key = L.object_key(cluster, group, kind, namespace, name)
        meta = self._h.cfs[L.CF_OBJMETA].get(key)
        current = self._current(key, meta) if meta is not None else None
        return current[1] if current is not None else None

    def get_entry(
        self, cluster: str, group: str, kind: str, namespace: str, name: str
    ) -> StoredObject | None:
        key = L.object_key(cluster, group, kind, namespace, name)
        meta = self._h.cfs[L.CF_OBJMETA].get(key)
        current = self._current(key, meta) if meta is not None else None
        return decode_stored(key, *current) if current is not None else None

    def _current(self, objkey: bytes, meta: bytes) -> tuple[bytes, bytes] | None:
        """(meta, body) of the object's current version, starting from ``meta`` as read.

        A reader's two lookups are not one snapshot: a secondary that catches up (or
        reopens) between them may already have dropped the version ``meta`` names (the
        writer deletes a replaced version in the same batch when no history is kept).
        A missing version therefore means "newer state": read the meta again and follow
        it; None only when the object is gone in that newer state."""
        for _ in range(_FOLLOW_ATTEMPTS):
            h = self._h  # the handles now: a reopened reader has new ones
            value: bytes | None = h.cfs[L.CF_VERSIONS].get(L.version_key(objkey, meta))
            if value is not None:
                return meta, L.body_of_version(value)
            newer: bytes | None = h.cfs[L.CF_OBJMETA].get(objkey)
            if newer is None or newer == meta:
                return None
            meta = newer
        return None

    def _current_bodies(self, keys: list[bytes], metas: list[bytes | None]) -> list[bytes | None]:
        """Bodies of the current versions of ``keys`` (None where the meta is None), with
        one MultiGet; a version missing because the reader caught up between the two
        reads is followed to the newer state (:meth:`_current`)."""
        wanted = [L.version_key(k, m) for k, m in zip(keys, metas, strict=True) if m is not None]
        found = iter(multi_get(self._h.cfs[L.CF_VERSIONS], wanted))
        out: list[bytes | None] = []
        for k, m in zip(keys, metas, strict=True):
            value = next(found) if m is not None else None
            if value is not None:
                out.append(L.body_of_version(value))
            elif m is not None:
                current = self._current(k, m)
                out.append(current[1] if current is not None else None)
            else:
                out.append(None)
        return out

    def list_objects(
        self,
        clusters: Sequence[str] | None = None,
        group: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        name_prefix: str | None = None,
        after: bytes | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """Objects in key order (cluster, group, kind, namespace, name), one page.

        Served by prefix scans: with ``kind`` but no ``group`` the view scans each group
        that has that kind (known from the per-kind counts), never the whole cluster.
        """
        limit = _limit(limit)
        keys: list[bytes] = []
        metas: list[bytes | None] = []
        objmeta = self._h.cfs[L.CF_OBJMETA]
        name_filter = name_prefix if name_prefix is not None else ""
        full = False
        for prefix, needs_filter in self._list_prefixes(
            clusters, group, kind, namespace, name_prefix
        ):
            for key, meta in scan(objmeta, prefix, _after(after)):
                if needs_filter:
                    _, _, _, ns, n = L.split_object_key(key)
                    if (namespace is not None and ns != namespace) or not n.startswith(name_filter):
                        continue
                keys.append(key)
                metas.append(meta)
                if len(keys) == limit:
                    full = True
                    break
            if full:
                break
        bodies = self._current_bodies(keys, metas)
        items = [_item(k, b) for k, b in zip(keys, bodies, strict=True) if b is not None]
        return Page(items, keys[-1] if full else None)

    def count(
        self,
        clusters: Sequence[str] | None = None,
        group: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
    ) -> int:
        """Number of live objects. Without ``namespace`` it sums the per-kind counters
        (no scan); with it, it scans the (small) objmeta keys of the matching kinds."""
        if namespace is None:
            total = 0
            for cluster in self._clusters_or(clusters):
                for (g, k), n in self._kind_counts(cluster).items():
                    if (group is None or g == group) and (kind is None or k == kind):
                        total += n
            return total
        total = 0
        objmeta = self._h.cfs[L.CF_OBJMETA]
        for prefix, _ in self._list_prefixes(clusters, group, kind, namespace, None):
            for _key, _value in scan(objmeta, prefix):
                total += 1
        return total

    def _list_prefixes(
        self,
        clusters: Sequence[str] | None,
        group: str | None,
        kind: str | None,
        namespace: str | None,
        name_prefix: str | None,
    ) -> list[tuple[bytes, bool]]:
        """Sorted, disjoint key prefixes covering the query, and whether each needs a
        namespace/name filter on top (when the prefix cannot express them)."""
        out: list[tuple[bytes, bool]] = []
        for cluster in self._clusters_or(clusters):
            if group is not None and kind is not None:
                pairs: list[tuple[str, str]] | None = [(group, kind)]
            elif group is None and kind is None and namespace is None:
                pairs = None
            else:
                pairs = sorted(
                    (g, k)
                    for (g, k) in self._kind_counts(cluster)
                    if (group is None or g == group) and (kind is None or k == kind)
                )
            if pairs is None:
                out.append((cluster.encode() + L.SEP, name_prefix is not None))
                continue
            for g, k in pairs:
                base = f"{cluster}\x00{g}\x00{k}\x00"
                if namespace is None:
                    out.append((base.encode(), name_prefix is not None))
                else:
                    out.append((f"{base}{namespace}\x00{name_prefix or ''}".encode(), False))
        out.sort()
        return out

    # -- indexes -------------------------------------------------------------------------

    def by_label(
        self,
        key: str,
        value: str | None = None,
        *,
        clusters: Sequence[str] | None = None,
        group: str | None = None,
        kind: str | None = None,
        after: bytes | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """Objects carrying label ``key`` (with ``value``, or any value when None)."""
        return self._index_page(
            L.CF_IDX_LABEL,
            L.label_prefix(key, value),
            L.objkey_of_label_index,
            clusters,
            group,
            kind,
            after,
            limit,
        )

    def by_owner(
        self,
        cluster: str,
        owner_uid: str,
        *,
        after: bytes | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """Objects whose ownerReferences include ``owner_uid`` (e.g. a ReplicaSet's pods)."""
        return self._index_page(
            L.CF_IDX_OWNER,
            L.owner_prefix(cluster, owner_uid),
            L.objkey_of_owner_index,
            None,
            None,
            None,
            after,
            limit,
        )

    def by_app(
        self,
        app: str,
        *,
        clusters: Sequence[str] | None = None,
        group: str | None = None,
        kind: str | None = None,
        after: bytes | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """Objects annotated ``moniker.spinnaker.io/application: <app>``, across clusters."""
        return self._index_page(
            L.CF_IDX_APP,
            L.app_prefix(app),
            L.objkey_of_app_index,
            clusters,
            group,
            kind,
            after,
            limit,
        )

    def _index_page(
        self,
        cf: str,
        prefix: bytes,
        objkey_of: Any,
        clusters: Sequence[str] | None,
        group: str | None,
        kind: str | None,
        after: bytes | None,
        limit: int,
    ) -> Page:
        limit = _limit(limit)
        wanted = set(clusters) if clusters is not None else None
        keys: list[bytes] = []
        last: bytes | None = None
        full = False
        for index_key, _ in scan(self._h.cfs[cf], prefix, _after(after)):
            objkey: bytes = objkey_of(index_key)
            if wanted is not None or group is not None or kind is not None:
                c, g, k, _, _ = L.split_object_key(objkey)
                if (
                    (wanted is not None and c not in wanted)
                    or (group is not None and g != group)
                    or (kind is not None and k != kind)
                ):
                    continue
            keys.append(objkey)
            last = index_key
            if len(keys) == limit:
                full = True
                break
        bodies = self._current_bodies(keys, multi_get(self._h.cfs[L.CF_OBJMETA], keys))
        items = [_item(k, b) for k, b in zip(keys, bodies, strict=True) if b is not None]
        return Page(items, last if full else None)

    def applications(self, clusters: Sequence[str] | None = None) -> list[str]:
        """Application names (``moniker.spinnaker.io/application``) with at least one
        object in ``clusters`` (all when None), sorted. A skip scan of the app index:
        after the first matching entry of an app, it seeks past the rest of them."""
        wanted = set(clusters) if clusters is not None else None
        names: list[str] = []
        it = self._h.cfs[L.CF_IDX_APP].iter()
        try:
            it.seek_to_first()
            while it.valid():
                key: bytes = it.key()
                app_raw, _, objkey = key.partition(L.SEP)
                if wanted is None or L.cluster_of_key(objkey) in wanted:
                    names.append(L.unesc(app_raw))
                    end = L.prefix_end(app_raw + L.SEP)
                    if end is None:
                        break
                    it.seek(end)
                else:
                    it.next()
        finally:
            del it
        return names

    # -- clusters and status -------------------------------------------------------------

    def clusters(self) -> list[str]:
        """Every cluster the view has seen a record of, sorted."""
        meta = self._h.cfs[L.CF_META]
        return [key[1:].decode() for key, _ in scan(meta, L.TAG_CLUSTER)]

    def _clusters_or(self, clusters: Sequence[str] | None) -> list[str]:
        return sorted(set(clusters)) if clusters is not None else self.clusters()

    def _kind_counts(self, cluster: str) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        prefix = L.TAG_KIND + cluster.encode() + L.SEP
        for key, value in scan(self._h.cfs[L.CF_META], prefix):
            _, g, k = L.split_kind_meta_key(key)
            out[(g, k)] = msgpack.unpackb(value)
        return out

    def offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> next offset to read, as stored (committed) in the view."""
        out: dict[tuple[str, int], int] = {}
        for key, value in scan(self._h.cfs[L.CF_META], L.TAG_OFFSET):
            out[L.split_partitioned_key(key)] = L.from_be64(value)
        return out

    def cluster_status(self, cluster: str) -> ClusterStatus | None:
        meta = self._h.cfs[L.CF_META]
        raw = meta.get(L.cluster_meta_key(L.TAG_CLUSTER, cluster))
        if raw is None:
            return None
        st: dict[str, Any] = msgpack.unpackb(raw)
        topic = topic_for(cluster, self._opts.topic_prefix)
        parts: dict[int, dict[str, Any]] = {}

        def part(p: int) -> dict[str, Any]:
            return parts.setdefault(
                p, {"next": None, "count": 0, "hash": 0, "session": "", "seq": 0, "open": 0}
            )

        for key, value in scan(meta, L.TAG_OFFSET + topic.encode() + L.SEP):
            part(L.split_partitioned_key(key)[1])["next"] = L.from_be64(value)
        for key, value in scan(meta, L.TAG_DIGEST + cluster.encode() + L.SEP):
            count, h = msgpack.unpackb(value)
            entry = part(L.split_partitioned_key(key)[1])
            entry["count"], entry["hash"] = count, h
        for key, value in scan(meta, L.TAG_SESSION + cluster.encode() + L.SEP):
            session, seq = msgpack.unpackb(value)
            entry = part(L.split_partitioned_key(key)[1])
            entry["session"], entry["seq"] = session, seq
        for key, value in scan(meta, L.TAG_RELIST + cluster.encode() + L.SEP):
            _gen, open_id, _full = msgpack.unpackb(value)
            if open_id is not None:
                part(L.split_relist_meta_key(key)[1])["open"] += 1
        counts = self._kind_counts(cluster)
        wall = meta.get(L.cluster_meta_key(L.TAG_WALL, cluster))
        verdict = st.get("verdict")
        return ClusterStatus(
            cluster=cluster,
            sync_state=st["state"],
            partitions=[
                PartitionStatus(
                    p, e["next"], e["count"], e["hash"], e["session"], e["seq"], e["open"]
                )
                for p, e in sorted(parts.items())
            ],
            counts_by_kind=counts,
            object_count=sum(counts.values()),
            last_verdict=DigestVerdict(cluster, *verdict) if verdict is not None else None,
            digest_checks=st["checks"],
            digest_mismatches=st["mismatches"],
            last_event_time_ms=st["event_ms"],
            last_record_time_ms=st["record_ms"],
            last_commit_ms=L.from_be64(wall) if wall is not None else None,
        )

    # -- change feed ---------------------------------------------------------------------

    def feed_bounds(self) -> tuple[int, int]:
        """(first kept position, last written position); (1, 0) when empty. A client
        resuming from a position below ``first - 1`` has missed pruned changes: relist."""
        raw = self._h.cfs[L.CF_META].get(L.KEY_FEED)
        if raw is None:
            return 1, 0
        next_pos, first = msgpack.unpackb(raw)
        return first, next_pos - 1

    def changes_since(self, position: int, limit: int = 1000) -> list[Change]:
        """Changes with a position strictly greater than ``position``, oldest first.
        Start with 0; resume with the last position received."""
        limit = _limit(limit)
        out: list[Change] = []
        want = max(position + 1, 0)
        for first, entry in self._feed_entries(want):
            for i, (op, event_ms, objkey, rv) in enumerate(entry):
                pos = first + i
                if pos < want:
                    continue
                c, g, k, ns, n = L.split_object_key(objkey)
                out.append(
                    Change(pos, c, g, k, ns, n, _OP_BY_VALUE.get(op) or Op(op), rv, event_ms)
                )
                if len(out) == limit:
                    return out
        return out

    def _feed_entries(self, position: int) -> Iterator[tuple[int, list[list[Any]]]]:
        """Commit entries from the one holding ``position`` on: (first position, changes)."""
        changes = self._h.cfs[L.CF_CHANGES]
        it = changes.iter()
        try:
            it.seek_for_prev(L.be64(position))
            start: bytes = it.key() if it.valid() else L.be64(0)
        finally:
            del it
        for key, value in scan(changes, b"", start):
            yield L.from_be64(key), L.unpack_changes(value)

    # -- point in time -------------------------------------------------------------------

    def get_at(
        self, cluster: str, group: str, kind: str, namespace: str, name: str, at_ms: int
    ) -> StoredObject | None:
        """The version current at ``at_ms`` (event time), within the kept history.
        Versions that ended before ``now - history_retention_s`` are gone: None.

        The current version answers when it had started by ``at_ms`` (one point lookup);
        otherwise the latest history entry that started by then (one ``seek_for_prev``),
        with ``superseded_ms`` set from the entry after it."""
        key = L.object_key(cluster, group, kind, namespace, name)
        meta = self._h.cfs[L.CF_OBJMETA].get(key)
        if meta is not None and L.META.unpack_from(meta)[6] <= at_ms:
            current = self._current(key, meta)
            if current is not None and L.META.unpack_from(current[0])[6] <= at_ms:
                return decode_stored(key, *current)
        it = self._h.cfs[L.CF_VERSIONS].iter()
        try:
            it.seek_for_prev(L.history_key(key, at_ms, 2**64 - 1))
            if not it.valid():
                return None
            hkey: bytes = it.key()
            if L.objkey_of_history(hkey) != key:
                return None
            version = _history_version(hkey, it.value())
            if version is None:
                return None
            it.next()
            if it.valid() and L.objkey_of_history(it.key()) == key:
                return replace(version, superseded_ms=L.start_of_history(it.key()))
            return version
        finally:
            del it

    def list_at(
        self,
        cluster: str,
        group: str,
        kind: str,
        at_ms: int,
        namespace: str | None = None,
        after: bytes | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> Page:
        """LIST of one kind as it was at ``at_ms``: current objects that had started by
        then, else the history entry current then. Merges two key-sorted scans."""
        limit = _limit(limit)
        prefix = f"{cluster}\x00{group}\x00{kind}\x00".encode()
        if namespace is not None:
            prefix += namespace.encode() + L.SEP
        current = scan(self._h.cfs[L.CF_OBJMETA], prefix, _after(after))
        # History keys of ``after`` itself are after\0<16 bytes>: start beyond all of them.
        hist_start = None if after is None else after + b"\x00" + b"\xff" * 17
        past = _history_at(scan(self._h.cfs[L.CF_VERSIONS], prefix, hist_start), at_ms)
        keys: list[bytes] = []
        current_metas: dict[bytes, bytes] = {}
        past_versions: dict[bytes, StoredObject] = {}
        for objkey, meta, version in _merge(current, past):
            if meta is not None and L.META.unpack_from(meta)[6] <= at_ms:
                keys.append(objkey)
                current_metas[objkey] = meta
            elif version is not None:
                keys.append(objkey)
                past_versions[objkey] = version
            else:
                continue
            if len(keys) == limit:
                break
        current_keys = list(current_metas)
        found = self._current_bodies(current_keys, list(current_metas.values()))
        bodies = dict(zip(current_keys, found, strict=True))
        items: list[Item] = []
        for k in keys:
            body = past_versions[k].body if k in past_versions else bodies[k]
            if body is not None:
                items.append(_item(k, body))
        return Page(items, keys[-1] if len(keys) == limit else None)

    # -- whole-view digest ---------------------------------------------------------------

    def view_digest(self, column_families: Sequence[str] = L.ALL_CFS) -> str:
        """BLAKE2b over every (CF, key, value) in key order: equal digests mean equal stores.

        Excluded: wall-clock commit times (``meta`` ``w`` keys). The change feed and the
        per-cluster "last ..." fields follow the order records were applied in, so two
        stores fed the same partitions interleaved differently differ there; pass
        ``CONTENT_CFS`` to compare only objects, metadata-free indexes and history.
        """
        h = hashlib.blake2b(digest_size=32)
        for name in sorted(column_families):
            h.update(b"\xffcf:" + name.encode() + b"\xff")
            if name == L.CF_CHANGES:  # per change, so commit boundaries do not matter
                for first, entry in self._feed_entries(0):
                    for i, change in enumerate(entry):
                        h.update(L.be64(first + i) + msgpack.packb(change))
                continue
            for key, value in scan(self._h.cfs[name], b""):
                if name == L.CF_META and key.startswith(L.TAG_WALL):
                    continue
                h.update(len(key).to_bytes(4, "big") + key + len(value).to_bytes(4, "big") + value)
        return h.hexdigest()


#: CFs whose content does not depend on how partitions were interleaved.
CONTENT_CFS = (
    L.CF_OBJMETA,
    L.CF_IDX_LABEL,
    L.CF_IDX_OWNER,
    L.CF_IDX_APP,
    L.CF_VERSIONS,
)


def _history_version(hkey: bytes, value: bytes) -> StoredObject | None:
    """The version a history entry holds; None for a DELETED entry."""
    kind, meta_len = L.HIST.unpack_from(value)
    if kind == L.HIST_DELETED:
        return None
    start = L.HIST.size
    meta = value[start : start + meta_len]
    return decode_stored(L.objkey_of_history(hkey), meta, value[start + meta_len :])


def _history_at(
    entries: Iterator[tuple[bytes, bytes]], at_ms: int
) -> Iterator[tuple[bytes, StoredObject | None]]:
    """Per object key (in order), the history version current at ``at_ms``, or None
    (deleted then, or no entry that old)."""
    cur_key: bytes | None = None
    best: tuple[bytes, bytes] | None = None
    for hkey, value in entries:
        objkey = L.objkey_of_history(hkey)
        if objkey != cur_key:
            if cur_key is not None:
                yield cur_key, _history_version(*best) if best is not None else None
            cur_key, best = objkey, None
        if L.start_of_history(hkey) <= at_ms:
            best = (hkey, value)  # keys ascend by start: the last one <= at_ms wins
    if cur_key is not None:
        yield cur_key, _history_version(*best) if best is not None else None


def _merge(
    current: Iterator[tuple[bytes, bytes]], past: Iterator[tuple[bytes, StoredObject | None]]
) -> Iterator[tuple[bytes, bytes | None, StoredObject | None]]:
    """Join two key-sorted streams: (objkey, current meta or None, past version or None)."""
    sentinel = (None, None)
    c: tuple[Any, Any] = next(current, sentinel)
    p: tuple[Any, Any] = next(past, sentinel)
    while c[0] is not None or p[0] is not None:
        if p[0] is None or (c[0] is not None and c[0] < p[0]):
            yield c[0], c[1], None
            c = next(current, sentinel)
        elif c[0] is None or p[0] < c[0]:
            yield p[0], None, p[1]
            p = next(past, sentinel)
        else:
            yield c[0], c[1], p[1]
            c, p = next(current, sentinel), next(past, sentinel)

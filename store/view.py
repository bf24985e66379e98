"""The view's two faces: :class:`View`, the single writer, and :class:`ViewReader`,
a read-only RocksDB secondary in another process.

Writer protocol (the consumer's loop)::

    view = View.open(path, opts)
    consumer.seek(view.resume_offsets())       # the store, not Kafka, says where to resume
    while running:
        records = poll()
        plan = view.plan(records)              # decode, validate, compute writes; no I/O writes
        dead_letter(plan.rejected)             # before or after commit, the offsets cover them
        result = view.commit(plan)             # ONE WriteBatch: data + indexes + meta + offsets

Plans must be committed in the order they were made, one at a time: a plan made
before another commit raises :class:`StalePlanError` at commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

import msgpack
from rocksdict import WriteBatch, WriteOptions

from deltas.keys import topic_for
from store import layout as L
from store.apply import ApplyPlan, Planner, TopicClusters
from store.db import Handles, all_keys, open_secondary, open_writer
from store.errors import StalePlanError, StoreError
from store.known import KnownKeys
from store.options import StoreOptions
from store.reads import ViewReads, scan
from store.records import SourceRecord
from store.state import StateUpdate, WriterState
from store.values import ApplyResult


class View(ViewReads):
    """The single writer of a store (RocksDB holds a LOCK: a second writer fails to open)."""

    def __init__(
        self,
        handles: Handles,
        opts: StoreOptions,
        state: WriterState,
        clock: Callable[[], float],
        known: KnownKeys | None = None,
    ) -> None:
        self._h = handles
        self._known = known
        self._opts = opts
        self._state = state
        self._clock = clock
        self._version = 0
        self._topics = TopicClusters(opts.topic_prefix)
        self._write_opts = self._new_write_options(bulk=False)
        self._bulk = False
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Path,
        opts: StoreOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> View:
        """Open (creating if missing) the store at ``path`` as its writer.

        ``clock`` (seconds since the epoch) decides history retention and the wall-clock
        commit times; tests pass a fixed one.
        Raises StoreLockedError if another writer has it open, StoreError otherwise.
        """
        opts = opts if opts is not None else StoreOptions()
        handles = open_writer(path, opts)
        try:
            state = WriterState.load(handles.cfs[L.CF_META])
            if state.schema is None:
                if state.offsets or any(True for _ in scan(handles.cfs[L.CF_OBJMETA], b"")):
                    raise StoreError(
                        f"store {path} has data but no schema version: not a kubedelta view"
                    )
                handles.cfs[L.CF_META][L.KEY_SCHEMA] = msgpack.packb(L.SCHEMA_VERSION)
                state.schema = L.SCHEMA_VERSION
            elif state.schema != L.SCHEMA_VERSION:
                raise StoreError(
                    f"store {path} has layout version {state.schema}, this build reads version "
                    f"{L.SCHEMA_VERSION}: delete it and rebuild it from Kafka (kubedelta replay)"
                )
            known = None
            if opts.known_keys_filter:
                # Every key the store holds, read once here (~1 s per million objects).
                objmeta = handles.cfs[L.CF_OBJMETA]
                known = KnownKeys.of(all_keys(objmeta), sum(state.kind_counts.values()))
        except BaseException:
            handles.close()
            raise
        return cls(handles, opts, state, clock, known)

    # -- the apply path ------------------------------------------------------------------

    def resume_offsets(self) -> dict[tuple[str, int], int]:
        """(topic, partition) -> next offset to read, as committed with the data.
        A partition that is absent has never been consumed: read it from the beginning."""
        return dict(self._state.offsets)

    def plan(self, records: Sequence[SourceRecord]) -> ApplyPlan:
        """Decode, validate and compute every write of ``records`` (in log order per
        partition; partitions may interleave). Reads the store, writes nothing."""
        self._check_open()
        planner = Planner(
            self._h,
            self._state,
            self._opts,
            self._topics,
            int(self._clock() * 1000),
            self._version,
            self._known,
        )
        return planner.plan(records)

    def commit(self, plan: ApplyPlan) -> ApplyResult:
        """Write the plan as ONE WriteBatch (WAL on, no fsync unless ``sync_writes``):
        objects, indexes, history, change feed, metadata and the next offset of every
        partition in the batch either all land or none do."""
        self._check_open()
        if plan.base_version != self._version:
            raise StalePlanError(
                f"plan was made at commit {plan.base_version}, the view is at {self._version}: "
                "commit each plan before planning the next batch"
            )
        self._write(plan.batch, plan.update)
        return plan.result

    def apply(self, records: Sequence[SourceRecord]) -> ApplyResult:
        """``commit(plan(records))``; the rejected records are in ``result.rejections``."""
        return self.commit(self.plan(records))

    # -- bulk mode (catch-up, replay) -----------------------------------------------------

    def _new_write_options(self, *, bulk: bool) -> WriteOptions:
        wo = WriteOptions()
        wo.sync = self._opts.sync_writes and not bulk
        # A property at run time; rocksdict's stub declares it as a method.
        wo.disable_wal = bulk  # type: ignore[method-assign, assignment]
        return wo

    @property
    def bulk(self) -> bool:
        """True while commits bypass the write-ahead log (see :meth:`begin_bulk`)."""
        return self._bulk

    def begin_bulk(self) -> None:
        """Commit without the WAL: about half the write cost of a ~2.5 KB object, for
        catching up on a long backlog. Still crash-consistent: flushes are atomic across
        CFs, so a crash leaves the state of the last flush, a prefix of every partition
        with its offsets, and the records after it are read again. Readers (secondaries)
        see only flushed data until :meth:`end_bulk`.

        Compactions wait for ``StoreOptions.bulk_l0_compaction_trigger`` L0 files
        instead of the usual few: the backlog is compacted once, after end_bulk, rather
        than the bottom level being rewritten again and again during the catch-up.

        The store is first persisted and reopened, so the WAL holds nothing when the
        unlogged writes start: a secondary that later switches to the reopened
        primary's MANIFEST replays the old WAL into its memtable, and stale entries
        there would shadow the newer flushed data (seen: a follower stuck at the
        pre-bulk state after end_bulk)."""
        self._check_open()
        if self._bulk:
            return
        self._reopen(bulk=True)
        self._write_opts = self._new_write_options(bulk=True)
        self._bulk = True

    def end_bulk(self) -> None:
        """Persist everything committed without the WAL, then commit with it again.

        Mixing is not safe without this: a crash would replay later WAL commits on top
        of a flushed state missing earlier unlogged ones. RocksDB flushes all CFs at
        once on close (atomic_flush), so the store is closed and reopened."""
        self._check_open()
        if not self._bulk:
            return
        self._reopen()
        self._write_opts = self._new_write_options(bulk=False)
        self._bulk = False

    def _reopen(self, *, bulk: bool = False) -> None:
        """Close (RocksDB flushes every CF atomically) and open the store again, with
        bulk mode's compaction triggers or the usual ones (StoreOptions)."""
        path = Path(self._h.db.path())
        self._h.close()
        self._h = open_writer(path, self._opts, bulk=bulk)

    def _write(self, batch: WriteBatch, update: StateUpdate) -> None:
        if len(batch):
            try:
                self._h.db.write(batch, self._write_opts)
            except Exception as exc:
                raise StoreError(f"write to {self._h.db.path()} failed: {exc}") from exc
        self._state.apply(update)
        self._version += 1

    # -- hand-over (shard mode) ----------------------------------------------------------

    def forget_partitions(self, topic_partitions: Iterable[tuple[str, int]]) -> int:
        """Remove the objects that arrived on these partitions, their history and
        metadata, and the partitions' offsets, atomically. Returns objects removed.

        For shard-mode hand-over: another writer now owns these partitions. No change
        feed entries are written (the objects did not change; this store stopped
        serving them).
        """
        self._check_open()
        by_cluster: dict[str, set[int] | None] = {}
        tps = set(topic_partitions)
        for topic, p in tps:
            cluster, _ = self._topics.get(topic)
            if cluster is not None:
                parts = by_cluster.setdefault(cluster, set())
                assert parts is not None
                parts.add(p)
        return self._remove(by_cluster, tps, drop=False)

    def drop_cluster(self, cluster: str) -> int:
        """Remove everything of ``cluster`` (objects, indexes, history, status, offsets)."""
        self._check_open()
        topic = topic_for(cluster, self._opts.topic_prefix)
        tps = {tp for tp in self._state.offsets if tp[0] == topic}
        return self._remove({cluster: None}, tps, drop=True)

    def _remove(
        self,
        by_cluster: dict[str, set[int] | None],
        tps: set[tuple[str, int]],
        *,
        drop: bool,
    ) -> int:
        batch = WriteBatch(raw_mode=True)
        hd = self._h.handles
        up = StateUpdate(feed_next=self._state.feed_next, feed_first=self._state.feed_first)
        removed = 0
        kind_delta: dict[tuple[str, str, str], int] = {}
        for cluster, parts in by_cluster.items():
            prefix = cluster.encode() + L.SEP
            for key, meta in scan(self._h.cfs[L.CF_OBJMETA], prefix):
                if parts is not None and L.META.unpack_from(meta)[3] not in parts:
                    continue
                fields = L.header_fields(meta)
                for lk, lv in fields[L.H_LABELS].items():
                    batch.delete(L.label_prefix(lk, lv) + key, hd[L.CF_IDX_LABEL])
                for o in fields[L.H_OWNERS]:
                    batch.delete(L.owner_prefix(cluster, o) + key, hd[L.CF_IDX_OWNER])
                if fields[L.H_APP]:
                    batch.delete(L.app_prefix(fields[L.H_APP]) + key, hd[L.CF_IDX_APP])
                batch.delete(key, hd[L.CF_OBJMETA])
                _, g, k, _, _ = L.split_object_key(key)
                kind_delta[(cluster, g, k)] = kind_delta.get((cluster, g, k), 0) - 1
                removed += 1
            for hkey, value in scan(self._h.cfs[L.CF_VERSIONS], prefix):
                meta_start = L.HIST.size
                if parts is not None and L.META.unpack_from(value, meta_start)[3] not in parts:
                    continue
                batch.delete(hkey, hd[L.CF_VERSIONS])  # its expiry entry is pruned later
            st = self._state
            for cp in [cp for cp in {*st.digests, *st.sessions} if cp[0] == cluster]:
                if parts is None or cp[1] in parts:
                    up.removed_cluster_partitions.add(cp)
                    batch.delete(L.partitioned_key(L.TAG_DIGEST, *cp), hd[L.CF_META])
                    batch.delete(L.partitioned_key(L.TAG_SESSION, *cp), hd[L.CF_META])
            for rk in st.relists:
                if rk[0] == cluster and (parts is None or rk[1] in parts):
                    up.removed_relists.add(rk)
                    batch.delete(L.relist_meta_key(*rk), hd[L.CF_META])
            if drop:
                for kk in [kk for kk in st.kind_counts if kk[0] == cluster]:
                    up.removed_kinds.add(kk)
                    batch.delete(L.kind_meta_key(*kk), hd[L.CF_META])
                up.removed_clusters.add(cluster)
                batch.delete(L.cluster_meta_key(L.TAG_CLUSTER, cluster), hd[L.CF_META])
                batch.delete(L.cluster_meta_key(L.TAG_WALL, cluster), hd[L.CF_META])
            else:
                open_left = sum(
                    1
                    for rk, rs in st.relists.items()
                    if rk[0] == cluster and rk not in up.removed_relists and rs.open_id is not None
                )
                cm = st.clusters.get(cluster)
                if cm is not None:
                    # relists open only on forgotten partitions never end here: not "synced"
                    state = (
                        "syncing"
                        if open_left
                        else ("unknown" if cm.state == "syncing" else cm.state)
                    )
                    up.clusters[cluster] = replace(cm, open_relists=open_left, state=state)
                    batch.put(
                        L.cluster_meta_key(L.TAG_CLUSTER, cluster),
                        up.clusters[cluster].pack(),
                        hd[L.CF_META],
                    )
        for kk, delta in kind_delta.items():
            if kk in up.removed_kinds:
                continue
            total = self._state.kind_counts.get(kk, 0) + delta
            up.kind_counts[kk] = total
            batch.put(L.kind_meta_key(*kk), msgpack.packb(total), hd[L.CF_META])
        for tp in tps:
            up.removed_offsets.add(tp)
            batch.delete(L.partitioned_key(L.TAG_OFFSET, *tp), hd[L.CF_META])
        self._write(batch, up)
        return removed

    # -- lifecycle -------------------------------------------------------------------------

    def flush(self) -> None:
        """Flush every CF's memtables to SST files (tests and benchmarks measuring disk
        use). In bulk mode through close and reopen, so the flush stays atomic."""
        self._check_open()
        if self.bulk:
            self.end_bulk()
            self.begin_bulk()
            return
        for cf in self._h.cfs.values():  # with the WAL on, one CF at a time is safe
            cf.flush()

    def compact(self) -> None:
        """Full manual compaction of every CF (benchmarks: steady-state size on disk)."""
        self._check_open()
        for cf in self._h.cfs.values():
            cf.compact_range(None, None)

    def l0_files(self) -> dict[str, int]:
        """SST files in level 0 per column family: compaction work not done yet (bulk
        mode lets it accumulate, StoreOptions.bulk_l0_compaction_trigger)."""
        self._check_open()
        return {
            name: int(cf.property_int_value("rocksdb.num-files-at-level0") or 0)
            for name, cf in self._h.cfs.items()
        }

    def disk_usage(self) -> int:
        """Bytes of the store's files (SSTs, WAL, manifest) on disk."""
        path = Path(self._h.db.path())
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._h.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the view is closed")

    def __enter__(self) -> View:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ViewReader(ViewReads):
    """Read-only view of a store in another process: a RocksDB secondary instance.

    It sees the writer's data as of its last :meth:`catch_up` (whole WriteBatches only:
    never half a batch). ``secondary_path`` is this reader's own directory for its info
    log; each reader process needs its own.
    """

    def __init__(
        self, handles: Handles, opts: StoreOptions, path: Path, secondary_path: Path
    ) -> None:
        self._h = handles
        self._opts = opts
        self._path = path
        self._secondary_path = secondary_path
        self._manifest = _current_manifest(path)
        self._closed = False
        self.reopens = 0  #: times the writer switched MANIFEST and this reader reopened

    @classmethod
    def open(cls, path: Path, secondary_path: Path, opts: StoreOptions | None = None) -> ViewReader:
        opts = opts if opts is not None else StoreOptions()
        return cls(open_secondary(path, secondary_path, opts), opts, path, secondary_path)

    def catch_up(self) -> None:
        """Replay what the writer committed since the last call (MANIFEST + WAL tail).

        When the writer reopened the store (a restart, or the end of bulk mode) it writes
        a new MANIFEST; a secondary following across that switch was seen stuck at an
        old state after unlogged (bulk) writes, so the reader then reopens instead."""
        if self._closed:
            raise StoreError("the reader is closed")
        manifest = _current_manifest(self._path)
        if manifest != self._manifest:
            # Swap, do not close: requests in other threads may still hold the old
            # handles; the old instance closes when its last reference goes.
            self._h = open_secondary(self._path, self._secondary_path, self._opts)
            self._manifest = manifest
            self.reopens += 1
            return
        try:
            self._h.db.try_catch_up_with_primary()
        except Exception as exc:
            raise StoreError(f"catching up with the writer failed: {exc}") from exc

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._h.close()

    def __enter__(self) -> ViewReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _current_manifest(path: Path) -> str:
    """The MANIFEST the writer uses now (RocksDB's CURRENT file, replaced atomically)."""
    try:
        return (path / "CURRENT").read_text()
    except OSError as exc:
        raise StoreError(f"cannot read {path / 'CURRENT'}: {exc}") from exc

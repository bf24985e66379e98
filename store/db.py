"""Open the RocksDB store (rocksdict) with the tuned options, as writer or secondary.

The only module that builds rocksdict options; docs/store.md explains each knob.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    Cache,
    ColumnFamily,
    DBCompressionType,
    Env,
    MemtableFactory,
    Options,
    Rdict,
)

from store.errors import StoreError, StoreLockedError
from store.layout import (
    ALL_CFS,
    CF_CHANGES,
    CF_IDX_APP,
    CF_IDX_LABEL,
    CF_IDX_OWNER,
    CF_META,
    CF_OBJMETA,
    CF_VERSIONS,
    LAYOUT_1_CFS,
    SCHEMA_VERSION,
)
from store.options import StoreOptions

#: CFs read by point lookups (read-before-write, GET): they get a bloom filter. objmeta's
#: keys are often absent (every create); a ``versions`` key is present in one file, and
#: the filter lets a GET skip the other L0 files, which all span the whole key range.
_POINT_LOOKUP_CFS = frozenset({CF_OBJMETA, CF_VERSIONS})
#: CFs the writer reads while it applies: every record's read-before-write (one
#: MultiGet per batch) probes the bloom filter of each of their L0 files, so bulk mode
#: keeps their usual compaction trigger. objmeta is ~100 bytes per object, cheap to
#: compact; left to pile up to 64 files it cost the catch-up ~1.8 us of the consumer's
#: main thread per record (docs/benchmarks.md, Consume, session 12).
_READ_WHILE_APPLYING_CFS = frozenset({CF_OBJMETA})
#: CFs with large values: ZSTD in the bottommost level, larger blocks.
_LARGE_CFS = frozenset({CF_VERSIONS})
#: CFs the writer only writes (the bodies and the indexes): with
#: ``StoreOptions.vector_memtables`` its memtables for them are RocksDB vector memtables.
#: objmeta (read before every write), meta, changes and history_expiry (scanned by every
#: commit) keep skip lists: a read of a vector memtable sorts a copy of it.
WRITE_ONLY_CFS = frozenset({CF_VERSIONS, CF_IDX_LABEL, CF_IDX_OWNER, CF_IDX_APP})


def _cf_options(
    name: str, opts: StoreOptions, cache: Cache, *, writer: bool, bulk: bool = False
) -> Options:
    cf = Options(raw_mode=True)
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    # Index and filter blocks live with their table readers (loaded once per file, every
    # file stays open), not in the block cache. In the cache they thrashed: it is split
    # into 64 LRU shards of 1 MiB (64 MiB), and the index, filter or zstd dictionary of a
    # compacted file is larger than a shard, so it was evicted as soon as it was inserted
    # and read and parsed again on every lookup (~1 ms per GET at 300k objects instead of
    # ~5 us; docs/benchmarks.md). Outside the cache they take ~10-15 MB at 1M objects.
    table.set_cache_index_and_filter_blocks(False)
    if name in _POINT_LOOKUP_CFS:
        table.set_bloom_filter(opts.bloom_bits_per_key, False)
    if name in _LARGE_CFS:
        table.set_block_size(opts.large_block_bytes)
    cf.set_block_based_table_factory(table)
    if name == CF_VERSIONS:
        cf.set_write_buffer_size(opts.write_buffer_bytes)
        cf.set_level_zero_file_num_compaction_trigger(opts.versions_l0_compaction_trigger)
    elif name in (CF_OBJMETA, CF_CHANGES):
        cf.set_write_buffer_size(max(opts.write_buffer_bytes // 4, 4 * 1024 * 1024))
    else:
        cf.set_write_buffer_size(max(opts.write_buffer_bytes // 8, 4 * 1024 * 1024))
    bulk_trigger = opts.bulk_l0_compaction_trigger
    if bulk and name not in _READ_WHILE_APPLYING_CFS:
        # Compactions wait (StoreOptions.bulk_l0_compaction_trigger); View.end_bulk
        # reopens the store with the usual triggers above.
        cf.set_level_zero_file_num_compaction_trigger(bulk_trigger)
    # Writes slow down and stop at RocksDB's distances above the *bulk* trigger, in both
    # modes: the pile of L0 files a catch-up leaves must not stop the writes that follow
    # it while RocksDB compacts it (seen with RocksDB's stop at 36 files: the first
    # changes after a 1M catch-up waited ~10 s). Also keeps versions' own trigger (16)
    # from slowing writes after 4 more files, as RocksDB's defaults (20, 36) would.
    cf.set_level_zero_slowdown_writes_trigger(bulk_trigger + 16)
    cf.set_level_zero_stop_writes_trigger(bulk_trigger + 32)
    cf.set_max_write_buffer_number(3)
    cf.set_compression_type(DBCompressionType.lz4())
    if name in _LARGE_CFS:
        zstd = opts.bottommost_compression == "zstd"
        cf.set_bottommost_compression_type(
            DBCompressionType.zstd() if zstd else DBCompressionType.lz4()
        )
        if zstd:
            # window bits -14 (RocksDB's default), the level, default strategy, and a
            # dictionary trained on 100x its size of sampled blocks per output file.
            dictionary = opts.zstd_dictionary_bytes
            cf.set_bottommost_compression_options(-14, opts.zstd_level, 0, dictionary, True)
            if dictionary:
                cf.set_bottommost_zstd_max_train_bytes(100 * dictionary, True)
    cf.set_level_compaction_dynamic_level_bytes(True)
    if writer and opts.vector_memtables and name in WRITE_ONLY_CFS:
        # An insert appends; the sort happens once, at flush, in RocksDB's flush thread
        # instead of a skip-list insert per key in the committing (Python) thread.
        # Readers (secondaries) replay the WAL into their own skip lists.
        cf.set_memtable_factory(MemtableFactory.vector())
    return cf


def _db_options(
    opts: StoreOptions, cache: Cache, *, create: bool, writer: bool, bulk: bool = False
) -> Options:
    db = _cf_options(CF_META, opts, cache, writer=writer, bulk=bulk)
    db.create_if_missing(create)
    db.create_missing_column_families(create)
    db.set_db_write_buffer_size(opts.total_write_buffer_bytes)
    db.set_max_total_wal_size(opts.max_total_wal_bytes)
    db.set_max_background_jobs(opts.max_background_jobs)
    db.set_max_open_files(-1)  # secondaries need it; table readers are cheap at our file counts
    if not writer:
        # A secondary's catch-up opens the table files new since the last one with this
        # many threads, and RocksDB starts them afresh for every column family on every
        # call: with the default 16, ~135 thread starts per catch-up, 6.4 ms of CPU on an
        # idle store, 10 times a second per query service. One: 0.03 ms (serial opens of
        # the few new files a flush or compaction leaves are cheap). The writer keeps the
        # default: it opens every file once, at startup.
        db.set_max_file_opening_threads(1)
    db.set_keep_log_file_num(3)
    db.set_max_log_file_size(8 * 1024 * 1024)
    db.set_bytes_per_sync(1024 * 1024)  # smooth background writeback, no fsync bursts
    # Every flush (memtable full, shutdown) cuts all CFs at the same sequence number, so
    # what is on disk is always whole WriteBatches even for writes without the WAL (bulk
    # mode, View.begin_bulk): after a crash the store is the state of the last flush.
    db.set_atomic_flush(True)
    if writer and opts.vector_memtables:
        # Only skip lists take concurrent inserts (RocksDB refuses to open otherwise); the
        # view has one writing thread, so nothing is lost.
        db.set_allow_concurrent_memtable_write(False)
    if writer and opts.low_priority_compactions:
        # Compactions (RocksDB's LOW pool) run at nice 19: on a busy box the live path
        # (fetch, apply, flush: the HIGH pool keeps its priority) gets the cores first
        # and compactions take what is left. If they fall far behind, L0 grows to the
        # slowdown trigger and RocksDB throttles the writes, which frees the cores.
        env = Env()  # RocksDB's default Env: one per process, shared by every store in it
        env.lower_thread_pool_cpu_priority()
        db.set_env(env)
    return db


def multi_get(cf: Rdict, keys: list[bytes]) -> list[bytes | None]:
    """Batched point lookups (RocksDB MultiGet): one call, values or None, in key order given."""
    if not keys:
        return []
    values: list[bytes | None] = cf.get(keys)  # type: ignore[arg-type, assignment]
    return values


def all_keys(cf: Rdict) -> Iterator[bytes]:
    """Every key of ``cf``, in key order (raw mode: bytes); the values are not read."""
    keys: Iterator[bytes] = iter(cf.keys())  # type: ignore[arg-type]
    return keys


@dataclass(slots=True)
class Handles:
    """An open store: the DB, one Rdict per CF (reads) and CF handles (WriteBatch puts)."""

    db: Rdict
    cfs: dict[str, Rdict]
    handles: dict[str, ColumnFamily]
    cache: Cache
    writer: bool = False  #: the read-write instance (secondaries cannot change options)
    #: Opened for bulk mode: writes without the WAL, which the close must flush.
    bulk: bool = False

    def close(self) -> None:
        """Release the store. rocksdict keeps the DB (and its LOCK) alive while any CF
        object or handle is referenced, so drop them all before closing the DB.

        The CF objects are dropped, not closed: rocksdict's close() flushes its own CF
        alone, and one CF flushed without the others breaks the all-CFs-at-once flush
        that writes without the WAL rely on. RocksDB's shutdown flushes every CF
        atomically instead (atomic_flush).

        A bulk-mode writer first turns automatic compactions off: the closing flush (what
        it wrote without the WAL) can take a CF over its L0 trigger, RocksDB then starts a
        compaction during the shutdown and the close waits for all of it (the LOGs of 1M
        replays: a 7.8 s compaction started after "canceling all background work", in
        about half the runs). Compactions are left to the next opener, which compacts in
        the background with its own options; ones already running are still waited for.
        (~40 ms for the nine CFs, each change writes an OPTIONS file: not worth it for a
        logged writer, whose close flushes nothing.)"""
        if self.writer and self.bulk:
            for cf in (self.db, *self.cfs.values()):
                # Not persisted for the next open, which passes its options explicitly.
                cf.set_options({"disable_auto_compactions": "true"})
        self.cfs.clear()
        self.handles.clear()
        self.db.close()


def _refuse_old_layout(path: Path) -> None:
    if not (path / "CURRENT").exists():
        return
    try:
        present = set(Rdict.list_cf(str(path)))
    except Exception as exc:  # rocksdict raises plain Exception for RocksDB statuses
        raise StoreError(f"cannot read the column families of store {path}: {exc}") from exc
    if present & LAYOUT_1_CFS:
        raise StoreError(
            f"store {path} has layout version 1, this build reads version {SCHEMA_VERSION}: "
            "delete it and rebuild it from Kafka (kubedelta replay)"
        )


def open_writer(path: Path, opts: StoreOptions, *, bulk: bool = False) -> Handles:
    """The writer; ``bulk``: with the compaction triggers of bulk mode (View.begin_bulk)."""
    path.mkdir(parents=True, exist_ok=True)
    cache = Cache(opts.block_cache_bytes)
    return _open(path, opts, cache, AccessType.read_write(), create=True, writer=True, bulk=bulk)


def open_secondary(path: Path, secondary_path: Path, opts: StoreOptions) -> Handles:
    if not (path / "CURRENT").exists():
        raise StoreError(f"no store at {path}: the writer must create it first")
    secondary_path.mkdir(parents=True, exist_ok=True)
    cache = Cache(opts.block_cache_bytes)
    access = AccessType.secondary(str(secondary_path))
    return _open(path, opts, cache, access, create=False, writer=False)


def _open(
    path: Path,
    opts: StoreOptions,
    cache: Cache,
    access: Any,
    *,
    create: bool,
    writer: bool,
    bulk: bool = False,
) -> Handles:
    _refuse_old_layout(path)
    db_opts = _db_options(opts, cache, create=create, writer=writer, bulk=bulk)
    cf_opts = {name: _cf_options(name, opts, cache, writer=writer, bulk=bulk) for name in ALL_CFS}
    try:
        db = Rdict(str(path), db_opts, column_families=cf_opts, access_type=access)
    except Exception as exc:  # rocksdict raises plain Exception for RocksDB statuses
        text = str(exc)
        if "lock" in text.lower():
            raise StoreLockedError(
                f"store {path} is open by another writer (RocksDB LOCK held); "
                f"only one writer may open it, readers use ViewReader: {text}"
            ) from exc
        raise StoreError(f"cannot open store {path}: {text}") from exc
    try:
        cfs = {name: db.get_column_family(name) for name in ALL_CFS}
        handles = {name: db.get_column_family_handle(name) for name in ALL_CFS}
    except Exception as exc:
        db.close()
        raise StoreError(f"store {path} lacks a column family: {exc}") from exc
    return Handles(db=db, cfs=cfs, handles=handles, cache=cache, writer=writer, bulk=bulk)

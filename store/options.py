"""Settings of the view: retention and the tuned RocksDB knobs (docs/store.md says why)."""

from __future__ import annotations

from dataclasses import dataclass

from deltas.codec import DEFAULT_MAX_BODY
from deltas.errors import ConfigError
from deltas.keys import DEFAULT_TOPIC_PREFIX

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Everything the view needs besides its path. Built by ``kubedelta/`` and passed down."""

    #: Cluster topics are ``<topic_prefix>.<cluster>``; records of other topics are rejected.
    topic_prefix: str = DEFAULT_TOPIC_PREFIX
    #: Seconds of superseded object versions kept for ``get_at``/``list_at`` (event time).
    #: 0 keeps no history: a replaced version is deleted in the commit that replaces it.
    history_retention_s: int = 3600
    #: Upper bound on expired history versions deleted per commit, so one commit after a
    #: long pause does not turn into one huge batch; the rest go in the next commits.
    history_prune_per_commit: int = 20_000
    #: Change-feed entries kept (count). Older positions are deleted in bulk
    #: (one range delete) once the excess reaches 10 % of this, to keep range tombstones few.
    changes_retention: int = 1_000_000
    #: Largest body accepted, bytes (passed to ``decode_header``); bigger records are rejected.
    max_body_bytes: int = DEFAULT_MAX_BODY
    #: Memtable size of the ``versions`` CF, bytes. 32 MiB: ~12k Pod bodies per L0 file,
    #: large enough to keep flushes rare, small enough for the RSS budget; objmeta/
    #: changes get a quarter of it, the index and meta CFs an eighth (at least 4 MiB).
    write_buffer_bytes: int = 32 * MIB
    #: Cap on all memtables together, bytes (RocksDB ``db_write_buffer_size``): the largest
    #: memtable is flushed when it is reached, so 9 CFs cannot each fill theirs.
    total_write_buffer_bytes: int = 64 * MIB
    #: Data block size of the ``versions`` CF (the bodies), bytes. 16 KiB holds ~6 Pod
    #: bodies, so compression sees their shared structure: ~1.3x smaller on disk than 4 KiB
    #: blocks, for a larger block to decompress per GET (docs/benchmarks.md).
    large_block_bytes: int = 16 * 1024
    #: Shared LRU block cache for all CFs, bytes. Index and filter blocks live in it too,
    #: so this bounds read-side memory. With the memtables: ~130 MiB of RocksDB memory,
    #: so a consumer holding 1M objects stays under 400 MB RSS (docs/benchmarks.md).
    block_cache_bytes: int = 64 * MIB
    #: Bloom filter bits per key on point-lookup CFs (objmeta, versions): ~1 % false
    #: positives, so read-before-write of a new object costs no data-block read, and a
    #: GET reads a body from the one file that holds it, not from every L0 file.
    bloom_bits_per_key: int = 10
    #: L0 files of ``versions`` (the bodies) that start a compaction into the level below.
    #: Bodies arrive in random key order over every cluster, so each L0 compaction
    #: rewrites the whole bottom level (zstd): waiting for 16 files instead of RocksDB's 4
    #: makes those rewrites a quarter as frequent (8 -> 16: the consumer's CPU -10 % under
    #: 10,000 changes/s), for more L0 files that GETs skip by their bloom filters. Writes
    #: slow down and stop far above it (see bulk_l0_compaction_trigger; docs/store.md).
    versions_l0_compaction_trigger: int = 16
    #: L0 files that start a compaction while the writer is in bulk mode (catching up on
    #: a long backlog without the WAL, View.begin_bulk), in every CF but objmeta, which
    #: each record's read-before-write probes file by file (it keeps compacting at
    #: RocksDB's 4: small, cheap to compact). RocksDB's advice
    #: for bulk loads, and what Kafka Streams does while restoring a store: keys arrive
    #: in random order, so each compaction during the catch-up would rewrite (and
    #: re-compress) the growing bottom level again; deferred, the catch-up runs without
    #: them and the backlog is compacted once, after it (end_bulk restores the usual
    #: triggers and RocksDB starts at once). Bounded, so a very long catch-up still
    #: compacts every this many flushes and GETs never probe more L0 files' bloom
    #: filters than this. Writes slow down and stop +16 and +32 files above it, in
    #: every CF and in both modes, so the pile left after a catch-up never stalls the
    #: writes that follow while it is compacted.
    bulk_l0_compaction_trigger: int = 64
    #: The writer keeps the bodies and the indexes (CFs it never reads while applying) in
    #: RocksDB vector memtables: an insert is an append and the sort happens once, at
    #: flush, in RocksDB's flush thread, instead of a skip-list insert per key in the
    #: committing thread, the consumer's bottleneck (commit 5.4 -> 2.1 us per record,
    #: docs/benchmarks.md). A read of those CFs *in the writer process* sorts a copy of
    #: the memtable (fine for its rare reads; query services read through secondaries,
    #: which keep skip lists). False: skip lists everywhere.
    vector_memtables: bool = True
    #: The writer keeps a Bloom filter of the object keys the store may hold
    #: (store/known.py) and skips the read-before-write of keys it cannot hold: new
    #: objects, nearly every record of a catch-up, a replay or a first sync (bench
    #: consume 1M: the main thread -2 us per record). Costs ~1.25 bytes per object and
    #: one pass over objmeta's keys when the store is opened (~1 s per million
    #: objects). False: read every key, as before.
    known_keys_filter: bool = True
    #: WAL bytes after which RocksDB flushes the CFs pinning the oldest WAL file. Without
    #: it, rarely written small CFs would keep old WAL files alive and the WAL grows unbounded.
    max_total_wal_bytes: int = 256 * MIB
    #: Background flush + compaction threads. The box has 2 cores shared with the consumer.
    max_background_jobs: int = 2
    #: The writer's compaction threads run at the lowest CPU priority (nice 19, RocksDB's
    #: ``LowerThreadPoolCPUPriority``; flushes keep theirs): a compaction is never
    #: urgent, the next change to reach the query API is. Set for the process (RocksDB's
    #: default Env), so every writable store in it gets it.
    low_priority_compactions: bool = True
    #: fsync the WAL on every commit. Off: a process crash (kill -9) loses nothing because
    #: the WAL is in the OS page cache; a power loss loses a suffix of commits, whose offsets
    #: are lost with them, so Kafka replays exactly those records (see docs/store.md).
    sync_writes: bool = False
    #: Compression of the large CF (versions) in the bottommost level: "zstd" (best
    #: ratio on JSON) or "lz4"; upper levels always use LZ4 (fast, flushed data is short-lived).
    bottommost_compression: str = "zstd"
    #: zstd level of the bottommost ``versions`` files. The bottom level is rewritten at
    #: every L0 compaction (bodies arrive in random key order) and zstd compression is
    #: most of the compactions' CPU; with the dictionary and 16 KiB blocks, level 1
    #: writes the same bytes on disk as level 3 (to 0.1 %) for ~22 % less background CPU
    #: at 300k Pods (3 interleaved runs each; no measured difference at 1M,
    #: docs/benchmarks.md). Negative levels are cheaper still but ~26 % larger (-3),
    #: past the store-size budget.
    zstd_level: int = 1
    #: zstd dictionary per bottommost SST file of ``versions``, bytes (0: none). Pods,
    #: Deployments... repeat their keys and shapes: a trained dictionary shrinks a
    #: compacted Pod from ~450 to ~315 B at 16 KiB blocks, with no measurable GET cost.
    zstd_dictionary_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        if self.history_retention_s < 0:
            raise ConfigError(f"history_retention_s must be >= 0, got {self.history_retention_s}")
        if self.changes_retention < 1:
            raise ConfigError(f"changes_retention must be >= 1, got {self.changes_retention}")
        if self.history_prune_per_commit < 1:
            raise ConfigError("history_prune_per_commit must be >= 1")
        if self.bottommost_compression not in ("zstd", "lz4"):
            raise ConfigError(
                f"bottommost_compression must be 'zstd' or 'lz4', got {self.bottommost_compression!r}"
            )
        if not -7 <= self.zstd_level <= 19:
            raise ConfigError(f"zstd_level must be in [-7, 19], got {self.zstd_level}")
        if not 0 <= self.zstd_dictionary_bytes <= 1024 * 1024:
            raise ConfigError(
                f"zstd_dictionary_bytes must be in [0, 1 MiB], got {self.zstd_dictionary_bytes}"
            )
        if not 1024 <= self.large_block_bytes <= 1024 * 1024:
            raise ConfigError(
                f"large_block_bytes must be in [1 KiB, 1 MiB], got {self.large_block_bytes}"
            )
        for name in ("write_buffer_bytes", "total_write_buffer_bytes", "block_cache_bytes"):
            if getattr(self, name) < MIB:
                raise ConfigError(f"{name} must be at least 1 MiB")
        if not 2 <= self.versions_l0_compaction_trigger <= 16:
            raise ConfigError(
                "versions_l0_compaction_trigger must be in [2, 16] (the range measured), "
                f"got {self.versions_l0_compaction_trigger}"
            )
        if (
            not max(4, self.versions_l0_compaction_trigger)
            <= self.bulk_l0_compaction_trigger
            <= 256
        ):
            raise ConfigError(
                "bulk_l0_compaction_trigger must be in [4, 256] and at least "
                f"versions_l0_compaction_trigger ({self.versions_l0_compaction_trigger}): "
                f"writes slow down 16 files above it; got {self.bulk_l0_compaction_trigger}"
            )
        if self.max_background_jobs < 1:
            raise ConfigError("max_background_jobs must be >= 1")

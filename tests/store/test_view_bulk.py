"""Bulk mode defers compactions (StoreOptions.bulk_l0_compaction_trigger) and end_bulk
hands them back to RocksDB, with the data intact. Real RocksDB on disk."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from view_feed import Feed

from deltas.errors import ConfigError
from store import StoreOptions, View
from store import layout as L

#: Tiny memtables so a few thousand Pods make many L0 files; versions compacts at 2.
OPTS = StoreOptions(
    history_retention_s=0,
    write_buffer_bytes=1 << 20,
    total_write_buffer_bytes=2 << 20,
    versions_l0_compaction_trigger=2,
    bulk_l0_compaction_trigger=32,
)


def fill_until_l0(view: View, feed: Feed, files: int, tag: str) -> int:
    """Apply batches of ~1.5 KB objects until versions has ``files`` L0 files (or 60
    batches); returns the objects written."""
    written = 0
    for batch in range(60):
        view.apply([feed.upsert(f"{tag}-{batch}-{i}", "1", extra="x" * 1500) for i in range(300)])
        written += 300
        view.flush()
        if view.l0_files()[L.CF_VERSIONS] >= files:
            break
    return written


def settled_l0(view: View, timeout_s: float = 20.0) -> int:
    """versions' L0 file count once RocksDB has had time to compact (polled)."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = view.l0_files()[L.CF_VERSIONS]
        if count <= OPTS.versions_l0_compaction_trigger or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_bulk_mode_lets_l0_files_pile_up_and_end_bulk_compacts_them(tmp_path: Path) -> None:
    feed = Feed("alpha")
    with View.open(tmp_path / "s", OPTS) as view:
        # Logged writes: RocksDB compacts at 2 files, so they never pile up.
        written = fill_until_l0(view, feed, 8, "logged")
        assert settled_l0(view) <= 2

        view.begin_bulk()
        written += fill_until_l0(view, feed, 8, "bulk")
        time.sleep(0.5)  # time enough for the compaction the usual trigger would start
        assert view.l0_files()[L.CF_VERSIONS] >= 8
        digest = view.view_digest()

        view.end_bulk()
        assert settled_l0(view) <= 2
        assert view.count() == written
        assert view.view_digest() == digest


#: Tiny memtables, compactions deferred to 60 L0 files in bulk mode.
SMALL_BULK = StoreOptions(
    history_retention_s=0,
    write_buffer_bytes=1 << 20,
    total_write_buffer_bytes=2 << 20,
    bulk_l0_compaction_trigger=60,
)


def pile_up_in_bulk(view: View, feed: Feed, files: int) -> int:
    """Bulk writes of ~1.5 KB objects until versions has ``files`` L0 files; returns the
    objects written. RocksDB flushes by itself (2 MiB of memtables), every flush cutting
    an L0 file in each CF (atomic flush); View.flush would leave bulk mode."""
    view.begin_bulk()
    written = 0
    for batch in range(400):
        view.apply([feed.upsert(f"b{batch}-{i}", "1", extra="x" * 1500) for i in range(300)])
        written += 300
        if view.l0_files()[L.CF_VERSIONS] >= files:
            break
    assert view.l0_files()[L.CF_VERSIONS] >= files  # deferred: piled up
    return written


def test_bulk_mode_keeps_compacting_objmeta_which_every_batch_reads(tmp_path: Path) -> None:
    """objmeta is read before every write (one MultiGet per batch, a bloom probe per L0
    file): bulk mode defers the other CFs' compactions, not its own."""
    feed = Feed("alpha")
    with View.open(tmp_path / "s", SMALL_BULK) as view:
        written = pile_up_in_bulk(view, feed, 20)
        deadline = time.monotonic() + 20
        while view.l0_files()[L.CF_OBJMETA] > 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert view.l0_files()[L.CF_OBJMETA] <= 4  # compacted as usual
        assert view.count() == written


@pytest.mark.parametrize("bulk, versions", [(2, 2), (300, 16), (12, 16)])
def test_the_bulk_trigger_is_validated(bulk: int, versions: int) -> None:
    with pytest.raises(ConfigError, match="bulk_l0_compaction_trigger"):
        StoreOptions(bulk_l0_compaction_trigger=bulk, versions_l0_compaction_trigger=versions)
    StoreOptions(bulk_l0_compaction_trigger=16, versions_l0_compaction_trigger=16)


def test_the_pile_left_by_bulk_mode_does_not_stop_writes(tmp_path: Path) -> None:
    """More L0 files than RocksDB's default write-stop trigger (36): after end_bulk the
    store compacts them while writes go on (stop and slowdown sit above the bulk
    trigger in both modes)."""
    feed = Feed("alpha")
    with View.open(tmp_path / "s", SMALL_BULK) as view:
        written = pile_up_in_bulk(view, feed, 40)
        view.end_bulk()
        db = view._h.db  # the writer's RocksDB: the two stall properties are DB-wide
        assert db.property_int_value("rocksdb.is-write-stopped") == 0
        assert db.property_int_value("rocksdb.actual-delayed-write-rate") == 0
        view.apply([feed.upsert("after", "1")])
        assert view.count() == written + 1

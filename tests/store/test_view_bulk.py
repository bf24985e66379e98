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
from store.db import open_secondary


def tiny_memtables(**triggers: int) -> StoreOptions:
    """Tiny memtables, so a few thousand Pods make many L0 files; no history."""
    return StoreOptions(
        history_retention_s=0,
        write_buffer_bytes=1 << 20,
        total_write_buffer_bytes=2 << 20,
        **triggers,  # type: ignore[arg-type]
    )


#: versions compacts at 2 files, bulk mode at 32.
OPTS = tiny_memtables(versions_l0_compaction_trigger=2, bulk_l0_compaction_trigger=32)


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


#: Compactions deferred to 60 L0 files in bulk mode.
SMALL_BULK = tiny_memtables(bulk_l0_compaction_trigger=60)


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


#: versions compacts at 4 files as usual; bulk mode at 8 (the smallest pile allowed).
CLOSE_BULK = tiny_memtables(versions_l0_compaction_trigger=4, bulk_l0_compaction_trigger=8)


def versions_l0_on_disk(path: Path, secondary: Path) -> int:
    """versions' L0 file count of a closed store, read by a secondary (which never
    compacts)."""
    handles = open_secondary(path, secondary, CLOSE_BULK)
    try:
        return int(
            handles.cfs[L.CF_VERSIONS].property_int_value("rocksdb.num-files-at-level0") or 0
        )
    finally:
        handles.close()


def close_at_the_trigger(path: Path) -> int:
    """A bulk-mode store closed with one L0 file of versions short of the bulk trigger
    and writes still in its memtable, so the closing flush reaches the trigger; returns
    the objects written."""
    feed = Feed("alpha")
    view = View.open(path, CLOSE_BULK)
    view.begin_bulk()
    written = 0
    versions = view._h.cfs[L.CF_VERSIONS]
    for batch in range(200):  # RocksDB flushes by itself: ~2 batches per L0 file
        view.apply([feed.upsert(f"b{batch}-{i}", "1", extra="x" * 1500) for i in range(300)])
        written += 300
        # Count only once the full memtables are flushed: one still queued would add a
        # file (and reach the trigger) on its own, without the close.
        while versions.property_int_value("rocksdb.num-immutable-mem-table"):
            time.sleep(0.005)
        if view.l0_files()[L.CF_VERSIONS] >= CLOSE_BULK.bulk_l0_compaction_trigger - 1:
            break
    assert view.l0_files()[L.CF_VERSIONS] == CLOSE_BULK.bulk_l0_compaction_trigger - 1
    view.apply([feed.upsert(f"last-{i}", "1") for i in range(10)])  # left in the memtable
    view.close()
    return written + 10


def test_closing_does_not_start_a_compaction_it_would_wait_for(tmp_path: Path) -> None:
    """Closing flushes what bulk mode wrote without the WAL. When that flush makes a CF
    reach its L0 trigger, the close must not start (and wait for) the compaction: it is
    left to the next opener, which does it in the background. (Before, RocksDB started
    it in about a third of the closes here: several stores, so a regression shows.)"""
    trigger = CLOSE_BULK.bulk_l0_compaction_trigger
    for store in range(12):
        path = tmp_path / f"s{store}"
        written = close_at_the_trigger(path)
        # The closing flush made the trigger-th file, and nothing compacted them.
        assert versions_l0_on_disk(path, tmp_path / f"sec{store}") == trigger

    with View.open(path, CLOSE_BULK) as reopened:  # usual triggers: it compacts now
        deadline = time.monotonic() + 20
        while reopened.l0_files()[L.CF_VERSIONS] > 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reopened.l0_files()[L.CF_VERSIONS] <= 4
        assert reopened.count() == written

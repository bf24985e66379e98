"""A writer process for the crash test, and the deterministic batches it applies.

Run as ``python crash_writer.py STORE PROGRESS SEED START_MS [bulk]``: applies
``batches(SEED, START_MS)`` one commit at a time, appending the index of each
committed batch to PROGRESS, until it is killed. With ``bulk`` it commits without
the WAL (small memtables, so RocksDB flushes often) and persists every
``BULK_PERSIST_EVERY`` batches (``end_bulk``), appending ``persisted N`` after.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

from view_feed import Feed

from deltas import Op
from store import SourceRecord, StoreOptions

OPTS = StoreOptions(history_retention_s=3600)
#: Bulk mode: memtables this small flush (atomically, all CFs) every few batches.
BULK_OPTS = StoreOptions(
    history_retention_s=3600,
    write_buffer_bytes=1024 * 1024,
    total_write_buffer_bytes=2 * 1024 * 1024,
)
BULK_PERSIST_EVERY = 5
PARTITIONS = 3


def batches(seed: int, start_ms: int, count: int = 10_000) -> Iterator[list[SourceRecord]]:
    """A mixed, reproducible stream over two clusters: creates, label changes, deletes,
    tombstones, relists, digests and garbage, ~300 records per batch."""
    rng = random.Random(seed)
    feeds = [Feed(c, partitions=PARTITIONS, start_ms=start_ms) for c in ("crash-a", "crash-b")]
    live: list[dict[str, int]] = [{}, {}]
    for n in range(count):
        batch: list[SourceRecord] = []
        for _ in range(300):
            which = rng.randrange(2)
            feed, objs = feeds[which], live[which]
            roll = rng.random()
            name = f"p{rng.randrange(400)}"
            if roll < 0.75:
                objs[name] = objs.get(name, 0) + 1
                batch.append(
                    feed.upsert(
                        name,
                        str(objs[name]),
                        labels={"app": f"a{rng.randrange(5)}", "n": str(n)},
                        owners=(f"rs-{rng.randrange(3)}",),
                        app=f"app{rng.randrange(3)}",
                        extra="x" * rng.randrange(2000),
                    )
                )
            elif roll < 0.9:
                objs.pop(name, None)
                batch.append(feed.delete(name))
            elif roll < 0.93:
                objs.pop(name, None)
                batch.append(feed.tombstone(name))
            elif roll < 0.96:
                part = rng.randrange(PARTITIONS)
                batch.append(feed.digest(part, rng.randrange(5), rng.getrandbits(64)))
            elif roll < 0.98:
                batch.append(feed.raw(rng.randrange(PARTITIONS), rng.randbytes(40)))
            else:
                part = rng.randrange(PARTITIONS)
                rid = f"r{n}"
                batch.append(feed.relist(Op.RELIST_START, part, rid, full=rng.random() < 0.5))
                for obj_name in list(objs)[:50]:
                    if feed.partition_of(obj_name) == part:
                        batch.append(feed.upsert(obj_name, str(objs[obj_name])))
                batch.append(feed.relist(Op.RELIST_END, part, rid, full=True))
        yield batch


def offsets_after(seed: int, start_ms: int, n_batches: int) -> list[dict[tuple[str, int], int]]:
    """Next offsets after each of the first ``n_batches`` batches."""
    out: list[dict[tuple[str, int], int]] = []
    current: dict[tuple[str, int], int] = {}
    for i, batch in enumerate(batches(seed, start_ms)):
        if i == n_batches:
            break
        for r in batch:
            current[(r.topic, r.partition)] = r.offset + 1
        out.append(dict(current))
    return out


def _main() -> None:
    from store import View

    store, progress, seed, start_ms = (
        Path(sys.argv[1]),
        Path(sys.argv[2]),
        int(sys.argv[3]),
        int(sys.argv[4]),
    )
    bulk = sys.argv[5:] == ["bulk"]
    view = View.open(store, BULK_OPTS if bulk else OPTS)
    if bulk:
        view.begin_bulk()
    with progress.open("a") as log:
        for i, batch in enumerate(batches(seed, start_ms)):
            view.apply(batch)
            log.write(f"{i}\n")
            log.flush()
            if bulk and (i + 1) % BULK_PERSIST_EVERY == 0:
                view.end_bulk()
                log.write(f"persisted {i + 1}\n")
                log.flush()
                view.begin_bulk()


if __name__ == "__main__":
    _main()

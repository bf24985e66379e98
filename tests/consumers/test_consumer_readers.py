"""ViewFollower: another process's read-only view of the store keeps up with the writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from consumer_support import LogBuilder, store_options

from consumers import FollowerConfig, ViewFollower
from store import StoreError, View
from store.records import SourceRecord

PREFIX = "p.cluster"


def records(log: LogBuilder, start: int, count: int) -> list[SourceRecord]:
    out = []
    for offset in range(start, start + count):
        r = log.upsert("alpha", offset)
        out.append(SourceRecord(r.topic, 0, offset, r.key, r.value, 1_700_000_000_000))
    return out


async def test_follower_sees_what_the_writer_commits(tmp_path: Path) -> None:
    log = LogBuilder(PREFIX, 1)
    opts = store_options(PREFIX)
    with View.open(tmp_path / "view", opts) as writer:
        writer.apply(records(log, 0, 100))
        follower = ViewFollower(
            FollowerConfig(tmp_path / "view", tmp_path / "secondary", interval_s=0.05), opts
        )
        try:
            assert follower.reader.count() == 100  # opened now: sees what is committed
            stop = asyncio.Event()
            task = asyncio.create_task(follower.run(stop))
            writer.apply(records(log, 100, 50))
            for _ in range(200):
                if follower.reader.count() == 150:
                    break
                await asyncio.sleep(0.02)
            assert follower.reader.count() == 150
            assert follower.reader.offsets() == {(f"{PREFIX}.alpha", 0): 150}
            stop.set()
            await task
            assert follower.catch_ups >= 1
        finally:
            follower.close()


async def test_follower_of_a_missing_store_fails_fast(tmp_path: Path) -> None:
    follower = ViewFollower(
        FollowerConfig(tmp_path / "nothing", tmp_path / "secondary"), store_options(PREFIX)
    )
    with pytest.raises(StoreError, match="no store"):
        await follower.run(asyncio.Event())

"""When the query service catches up with the writer."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from query_support import StoreWriter, k8s_object, open_service

from deltas.errors import ConfigError
from query.config import QueryConfig


async def seen_after(tmp_path: Path, *, catch_up_on_write: bool = True) -> float | None:
    """Seconds from a commit until the service's reader holds it (None: not within 1.5 s),
    with a catch-up interval far longer than that."""
    writer = StoreWriter(tmp_path / "store")
    try:
        writer.write("c1", [k8s_object("ConfigMap", "first", "team-a")])
        service = open_service(
            tmp_path / "store",
            tmp_path / "secondary",
            catch_up_interval_s=30.0,
            catch_up_on_write=catch_up_on_write,
        )
        try:
            await service.start()
            assert service.reader.count() == 1
            await asyncio.sleep(0.1)
            committed = time.monotonic()
            writer.write("c1", [k8s_object("ConfigMap", "second", "team-a")])
            while time.monotonic() - committed < 1.5:
                if service.reader.count() == 2:
                    return time.monotonic() - committed
                await asyncio.sleep(0.005)
            return None
        finally:
            await service.stop()
            service.close()
    finally:
        writer.close()


async def test_a_commit_is_caught_up_when_it_is_written_not_an_interval_later(
    tmp_path: Path,
) -> None:
    assert await seen_after(tmp_path / "watching") is not None
    # The same without the watch: the 30 s interval holds it back (the test can fail).
    assert await seen_after(tmp_path / "polling", catch_up_on_write=False) is None


async def test_catch_ups_keep_their_minimum_gap_under_a_stream_of_commits(
    tmp_path: Path,
) -> None:
    writer = StoreWriter(tmp_path / "store")
    service = open_service(
        tmp_path / "store",
        tmp_path / "secondary",
        catch_up_interval_s=30.0,
        min_catch_up_gap_s=0.1,
    )
    try:
        await service.start()
        assert service.watching_writes
        before = service.stats.count
        started = time.monotonic()
        for i in range(100):  # 100 commits in ~1 s
            writer.write("c1", [k8s_object("ConfigMap", f"cm-{i}", "team-a")])
            await asyncio.sleep(0.01)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.3)
        catch_ups = service.stats.count - before
        assert 2 <= catch_ups <= elapsed / 0.1 + 2
        assert service.reader.count() == 100
    finally:
        await service.stop()
        service.close()
        writer.close()


def test_the_minimum_gap_must_fit_in_the_interval(tmp_path: Path) -> None:
    for gap, interval in ((-0.01, 0.05), (0.1, 0.05)):
        with pytest.raises(ConfigError, match="min_catch_up_gap_s"):
            QueryConfig(
                store_path=tmp_path,
                secondary_path=tmp_path,
                continue_secret=b"0123456789abcdef",
                catch_up_interval_s=interval,
                min_catch_up_gap_s=gap,
            )

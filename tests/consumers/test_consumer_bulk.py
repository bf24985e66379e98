"""Bulk catch-up (commits without the WAL) against the real broker."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from consumer_support import (
    LogBuilder,
    Running,
    all_objects,
    config,
    create_topics,
    produce,
    store_options,
    unique_prefix,
)

from consumers import ConsumerConfig
from deltas import topic_for
from store import View, ViewReader

pytestmark = pytest.mark.kafka


def reader_count(cfg: ConsumerConfig, secondary: Path, writer: View | None = None) -> int:
    """Objects a fresh reader (RocksDB secondary) sees; with ``writer``, also checks it
    sees exactly the writer's objects (only when flushed: the writer's own reads of its
    vector memtables sort a copy per read)."""
    reader = ViewReader.open(cfg.data_dir, secondary, store_options(cfg.topic_prefix))
    try:
        if writer is not None:
            assert all_objects(reader) == all_objects(writer)
        return reader.count()
    finally:
        reader.close()


async def test_a_long_catch_up_runs_in_bulk_and_is_persisted_before_ready(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    topics = [topic_for(c, prefix) for c in ("alpha", "beta")]
    await create_topics(kafka_bootstrap, topics, partitions=2)
    log = LogBuilder(prefix, 2)
    records = [log.upsert(c, i, pad=40) for c in ("alpha", "beta") for i in range(15_000)]
    await produce(kafka_bootstrap, records)

    cfg = config(tmp_path / "view", kafka_bootstrap, prefix, batch_max_records=1_000)
    assert cfg.bulk_catch_up_records <= len(records)
    modes: list[bool] = []
    running: Running
    running = Running(cfg, observer=lambda chunk: modes.append(running.view.bulk))
    async with running:
        await running.until(lambda: running.consumer.ready)
        # ready implies persisted: a reader opened now (it sees flushed data and the
        # WAL, nothing of a writer's memtables written without the WAL) has everything
        assert not running.view.bulk
        assert reader_count(cfg, tmp_path / "secondary", running.view) == 30_000
        assert running.consumer.metrics.bulk._value.get() == 0
        # later records, committed with the WAL again, reach readers without a flush
        await produce(kafka_bootstrap, [log.upsert("alpha", 99_999, pad=40)])
        await running.until(lambda: running.view.count() == 30_001)
        # from the WAL: nothing was flushed since
        assert reader_count(cfg, tmp_path / "secondary2") == 30_001
    assert True in modes, "the catch-up never ran in bulk mode"
    assert modes[-1] is False


async def test_a_ready_consumer_far_behind_catches_up_in_bulk_then_logs_again(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    await create_topics(kafka_bootstrap, [topic_for("alpha", prefix)], partitions=2)
    log = LogBuilder(prefix, 2)
    cfg = replace(
        config(tmp_path / "view", kafka_bootstrap, prefix, batch_max_records=500),
        bulk_catch_up_records=0,  # any bulk commit below comes from falling behind
        bulk_behind_records=2_000,
    )
    modes: list[bool] = []
    running: Running
    running = Running(cfg, observer=lambda chunk: modes.append(running.view.bulk))
    async with running:
        await running.until(lambda: running.consumer.ready)  # empty topics: ready at once
        await produce(kafka_bootstrap, [log.upsert("alpha", i, pad=40) for i in range(30_000)])
        await running.until(lambda: running.view.count() == 30_000)
        await running.until(lambda: not running.view.bulk)
        assert True in modes, "30,000 records behind never switched to bulk"
        # back within a tenth of the threshold: everything persisted for readers
        assert reader_count(cfg, tmp_path / "secondary", running.view) == 30_000
        assert running.consumer.metrics.bulk._value.get() == 0
        # a record now is committed with the WAL: readers see it without a flush
        await produce(kafka_bootstrap, [log.upsert("alpha", 99_999, pad=40)])
        await running.until(lambda: running.view.count() == 30_001)
        assert reader_count(cfg, tmp_path / "secondary2") == 30_001
    assert modes[-1] is False

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

from deltas import topic_for
from store import ViewReader

pytestmark = pytest.mark.kafka


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
        reader = ViewReader.open(cfg.data_dir, tmp_path / "secondary", store_options(prefix))
        try:
            assert reader.count() == 30_000
            assert all_objects(reader) == all_objects(running.view)
        finally:
            reader.close()
        assert running.consumer.metrics.bulk._value.get() == 0
        # later records, committed with the WAL again, reach readers without a flush
        await produce(kafka_bootstrap, [log.upsert("alpha", 99_999, pad=40)])
        await running.until(lambda: running.view.count() == 30_001)
        reader = ViewReader.open(cfg.data_dir, tmp_path / "secondary2", store_options(prefix))
        try:
            assert reader.count() == 30_001  # from the WAL: nothing was flushed since
        finally:
            reader.close()
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
        # back within a tenth of the threshold: everything persisted for readers (and
        # flushed: the writer's own reads below do not sort its vector memtables)
        reader = ViewReader.open(cfg.data_dir, tmp_path / "secondary", store_options(prefix))
        try:
            assert reader.count() == 30_000
            assert all_objects(reader) == all_objects(running.view)
        finally:
            reader.close()
        assert running.consumer.metrics.bulk._value.get() == 0
        # a record now is committed with the WAL: readers see it without a flush
        await produce(kafka_bootstrap, [log.upsert("alpha", 99_999, pad=40)])
        await running.until(lambda: running.view.count() == 30_001)
        reader = ViewReader.open(cfg.data_dir, tmp_path / "secondary2", store_options(prefix))
        try:
            assert reader.count() == 30_001
        finally:
            reader.close()
    assert modes[-1] is False

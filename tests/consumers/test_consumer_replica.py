"""Replica mode against the real broker: materialize, replay equals live, new topics."""

from __future__ import annotations

from pathlib import Path

import pytest
from consumer_support import (
    LogBuilder,
    Running,
    config,
    create_topics,
    end_offsets,
    produce,
    store_options,
    unique_prefix,
)

from consumers import ReplayConfig, Replayer
from deltas import topic_for
from store import View

pytestmark = pytest.mark.kafka


async def test_live_view_equals_replay_byte_for_byte(kafka_bootstrap: str, tmp_path: Path) -> None:
    # One cluster, one partition: the apply order is the log order in both runs, so
    # every column family (change feed included) must be identical.
    prefix = unique_prefix()
    topic = topic_for("alpha", prefix)
    await create_topics(kafka_bootstrap, [topic], partitions=1)
    log = LogBuilder(prefix, 1)
    records = [log.upsert("alpha", i) for i in range(3_000)]
    records += [log.upsert("alpha", i, version=2) for i in range(0, 3_000, 3)]
    records += [log.delete("alpha", i) for i in range(0, 3_000, 10)]
    await produce(kafka_bootstrap, records)
    targets = await end_offsets(kafka_bootstrap, [topic])

    live_cfg = config(tmp_path / "live", kafka_bootstrap, prefix, batch_max_records=700)
    async with Running(live_cfg) as live:
        await live.until_offsets(targets)
        await live.until(lambda: live.consumer.ready)
        live_digest = live.view.view_digest()
        live_objects = live.view.cluster_status("alpha")

    replay_cfg = config(tmp_path / "replay", kafka_bootstrap, prefix, batch_max_records=4_000)
    summary = await Replayer(ReplayConfig(replay_cfg), store_options(prefix)).run()
    with View.open(tmp_path / "replay", store_options(prefix)) as replayed:
        assert replayed.view_digest() == live_digest
    assert live_objects is not None
    assert [(r.cluster, r.objects, r.partitions) for r in summary.clusters] == [
        ("alpha", 3_000 - 300, 1)
    ]
    assert live_objects.object_count == 3_000 - 300


async def test_a_new_cluster_topic_is_picked_up_without_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    log = LogBuilder(prefix, 2)
    alpha, beta = topic_for("alpha", prefix), topic_for("beta", prefix)
    await create_topics(kafka_bootstrap, [alpha], partitions=2)
    await produce(kafka_bootstrap, [log.upsert("alpha", i) for i in range(500)])
    async with Running(config(tmp_path / "v", kafka_bootstrap, prefix)) as live:
        await live.until_offsets(await end_offsets(kafka_bootstrap, [alpha]))
        await live.until(lambda: live.consumer.ready)
        # The cluster appears while the consumer runs.
        await create_topics(kafka_bootstrap, [beta], partitions=2)
        await produce(kafka_bootstrap, [log.upsert("beta", i) for i in range(300)])
        await live.until_offsets(await end_offsets(kafka_bootstrap, [alpha, beta]))
        assert sorted(live.view.clusters()) == ["alpha", "beta"]
        beta_status = live.view.cluster_status("beta")
        assert beta_status is not None and beta_status.object_count == 300
        # Alpha was not re-read when the assignment grew: each record applied once.
        assert live.consumer.totals.skipped == 0
        assert live.consumer.totals.applied == 800


async def test_a_consumer_started_before_any_cluster_topic_waits_and_stops_on_request(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    log = LogBuilder(prefix, 1)
    alpha = topic_for("alpha", prefix)
    async with Running(config(tmp_path / "v", kafka_bootstrap, prefix)) as live:
        await live.until(lambda: live.consumer.ready)  # nothing existed: nothing to wait for
        await create_topics(kafka_bootstrap, [alpha], partitions=1)
        await produce(kafka_bootstrap, [log.upsert("alpha", i) for i in range(50)])
        await live.until_offsets(await end_offsets(kafka_bootstrap, [alpha]))
    assert live.task is None  # shutdown returned: the loop saw the stop request


async def test_a_record_larger_than_the_partition_fetch_size_is_consumed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    alpha = topic_for("alpha", prefix)
    await create_topics(kafka_bootstrap, [alpha], partitions=1)
    log = LogBuilder(prefix, 1)
    # ~3 MB body: 6x max_partition_fetch_bytes (512 KiB); etcd objects reach ~1.5 MiB.
    records = [log.upsert("alpha", 0), log.upsert("alpha", 1, pad=3_000_000)]
    await produce(kafka_bootstrap, [*records, log.upsert("alpha", 2)])
    cfg = config(tmp_path / "v", kafka_bootstrap, prefix)
    assert cfg.max_partition_fetch_bytes < 3_000_000
    async with Running(cfg) as live:
        await live.until_offsets(await end_offsets(kafka_bootstrap, [alpha]))
        body = live.view.get("alpha", "", "Pod", "ns-1", "pod-1")
        assert body is not None and len(body) > 3_000_000
        assert live.view.count() == 3

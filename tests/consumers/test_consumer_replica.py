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

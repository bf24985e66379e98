"""Replay: point-in-time with --until, cluster selection, target folder rules, time parsing."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from consumer_support import (
    LogBuilder,
    config,
    create_topics,
    produce,
    store_options,
    unique_prefix,
)

from consumers import ConsumerConfigError, ReplayConfig, Replayer, ReplayTargetError
from consumers.replay import cut_at_stop, parse_instant, prepare_target, select_topics
from deltas import topic_for
from store import View
from store.records import SourceRecord


@pytest.mark.kafka
async def test_until_returns_the_state_of_a_past_instant(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    alpha, beta = topic_for("alpha", prefix), topic_for("beta", prefix)
    await create_topics(kafka_bootstrap, [alpha, beta], partitions=2)
    log = LogBuilder(prefix, 2)
    t0 = int(time.time() * 1000) - 3_600_000  # an hour ago: inside any retention
    # Created at t0 + 10 i; later, every third is updated and every tenth deleted.
    first = [log.upsert(c, i, ts=t0 + 10 * i) for c in ("alpha", "beta") for i in range(1_000)]
    later = [log.upsert("alpha", i, version=2, ts=t0 + 60_000 + i) for i in range(0, 1_000, 3)]
    later += [log.delete("alpha", i, ts=t0 + 70_000 + i) for i in range(0, 1_000, 10)]
    await produce(kafka_bootstrap, first + later)

    async def replay_until(name: str, until_ms: int, clusters: tuple[str, ...] = ()) -> View:
        cfg = config(tmp_path / name, kafka_bootstrap, prefix)
        await Replayer(
            ReplayConfig(cfg, until_ms=until_ms, clusters=clusters), store_options(prefix)
        ).run()
        return View.open(tmp_path / name, store_options(prefix))

    # Inclusive: the record stamped exactly t0 + 5000 (object 500) is part of the state.
    with await replay_until("early", t0 + 5_000) as view:
        assert view.count(["alpha"]) == 501 and view.count(["beta"]) == 501
        assert view.get("alpha", "", "Pod", "ns-3", "pod-500") is not None
        assert view.get("alpha", "", "Pod", "ns-4", "pod-501") is None

    # After the creates, before the updates: everything at version 1.
    with await replay_until("middle", t0 + 50_000) as view:
        assert view.count(["alpha"]) == 1_000
        body = view.get("alpha", "", "Pod", "ns-0", "pod-0")
        assert body is not None and orjson.loads(body)["metadata"]["resourceVersion"] == "1"

    # After everything, one cluster only.
    with await replay_until("late", t0 + 100_000, ("alpha",)) as view:
        assert view.clusters() == ["alpha"]
        assert view.count(["alpha"]) == 900
        body = view.get("alpha", "", "Pod", "ns-3", "pod-3")
        assert body is not None and orjson.loads(body)["metadata"]["resourceVersion"] == "2"


@pytest.mark.kafka
async def test_replay_refuses_a_non_empty_folder_unless_forced(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    await create_topics(kafka_bootstrap, [topic_for("alpha", prefix)], partitions=1)
    await produce(kafka_bootstrap, [LogBuilder(prefix, 1).upsert("alpha", 1)])
    target = tmp_path / "view"
    target.mkdir()
    (target / "something").write_text("not a view")
    cfg = config(target, kafka_bootstrap, prefix)
    with pytest.raises(ReplayTargetError, match="--force"):
        await Replayer(ReplayConfig(cfg), store_options(prefix)).run()
    assert (target / "something").exists()
    summary = await Replayer(ReplayConfig(cfg, force=True), store_options(prefix)).run()
    assert [(r.cluster, r.objects, r.verdict) for r in summary.clusters] == [("alpha", 1, "none")]
    assert not (target / "something").exists()


@pytest.mark.kafka
async def test_replay_of_an_unknown_cluster_is_a_clear_error(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    cfg = config(tmp_path / "v", kafka_bootstrap, unique_prefix())
    with pytest.raises(ConsumerConfigError, match="no topic for cluster"):
        await Replayer(ReplayConfig(cfg, clusters=("nowhere",)), store_options("x.cluster")).run()


def test_parse_instant_accepts_iso_8601_and_unix_ms() -> None:
    assert parse_instant("1700000000123") == 1_700_000_000_123
    assert parse_instant("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_instant("2023-11-14T22:13:20.5+00:00") == 1_700_000_000_500
    assert parse_instant("2023-11-15T00:13:20+02:00") == 1_700_000_000_000
    assert parse_instant("2023-11-14T22:13:20") == 1_700_000_000_000  # no offset: UTC


@pytest.mark.parametrize(
    "bad", ["yesterday", "", "-5", "2023-13-01", "1.5e12", "1969-01-01T00:00:00Z"]
)
def test_parse_instant_rejects_anything_else(bad: str) -> None:
    with pytest.raises(ConsumerConfigError):
        parse_instant(bad)


def test_cut_at_stop_keeps_records_below_the_stop() -> None:
    records = [SourceRecord("t", 0, o, b"k", b"v", 0) for o in (3, 5, 6, 9)]
    assert cut_at_stop(records, 20) == (records, False)
    assert cut_at_stop(records, 10) == (records, True)
    assert cut_at_stop(records, 6) == (records[:2], True)
    assert cut_at_stop([], 6) == ([], False)


def test_select_topics_filters_by_prefix_and_cluster() -> None:
    topics = ["p.cluster.a", "p.cluster.b", "other.cluster.a", "p.cluster.B!", "p.clusterx"]
    assert select_topics(topics, "p.cluster", ()) == ["p.cluster.a", "p.cluster.b"]
    assert select_topics(topics, "p.cluster", ("b",)) == ["p.cluster.b"]
    with pytest.raises(ConsumerConfigError, match="no topic"):
        select_topics(topics, "p.cluster", ("c",))
    with pytest.raises(ConsumerConfigError):
        select_topics(topics, "p.cluster", ("Not A Name",))


def test_prepare_target_creates_missing_folders(tmp_path: Path) -> None:
    prepare_target(tmp_path / "a" / "b", force=False)
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReplayTargetError, match="not a folder"):
        prepare_target(tmp_path / "file", force=True)

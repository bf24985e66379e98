"""A tiny end-to-end benchmark run: 2 clusters x 50 objects through the real simulator,
producer, broker, consumer and query service (each its own process), then the
baselines over the same topics. The report must have every documented metric and the
view must equal the simulator's state object for object."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.e2e import E2eConfig, run_e2e, write_plots

CORE_METRICS = {
    "objects_total",
    "initial_sync_s",
    "verified",
    "differences",
    "churn_per_s",
    "e2e_p50_ms",
    "e2e_p95_ms",
    "e2e_p99_ms",
    "bytes_per_change",
    "disk_bytes",
    "store_disk_bytes",
    "kafka_disk_bytes",
    "rss_mb_simulator",
    "rss_mb_producer_max",
    "rss_mb_consumer",
    "rss_mb_query",
    "rss_mb_broker",
    "probes_sent",
    "probes_seen",
}
#: From the consumer's and producers' own histograms over the churn (bench/promscrape.py).
STAGE_METRICS = {
    "consumer_commit_delay_p50_ms",
    "consumer_commit_delay_p99_ms",
    "consumer_commit_delay_count",
    "consumer_batch_records_mean",
    "consumer_write_busy",
    "consumer_fetches_per_s",
    "consumer_fetch_partitions_per_request",
    "producer_ack_p50_ms",
    "producer_ack_p99_ms",
    "producer_ack_count",
}
BASELINE_METRICS = {"aiokafka_baseline_per_s", "ours_per_s", "ours_to_aiokafka_ratio"}
QUIX_METRICS = {"quix_per_s", "ours_to_quix_ratio"}


@pytest.mark.kafka
async def test_tiny_e2e_run_verifies_and_reports_every_metric(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    cfg = E2eConfig(
        clusters=2,
        objects=50,
        churn_per_s=20.0,
        duration_s=3.0,
        probes=10,
        work_dir=tmp_path / "e2e",
        baselines=True,
        quix=True,  # `make` installs the bench extra: the Quix baseline runs in CI too
        plots=False,
        sync_timeout_s=90.0,
        settle_timeout_s=30.0,
    )
    params, metrics, series = await run_e2e(cfg)

    expected = CORE_METRICS | STAGE_METRICS | BASELINE_METRICS | QUIX_METRICS
    assert expected <= metrics.keys()
    assert metrics["verified"] is True
    assert metrics["differences"] == 0
    assert metrics["objects_total"] == 100
    assert metrics["probes_seen"] == metrics["probes_sent"] == 10
    assert metrics["churn_per_s"] > 0
    assert metrics["bytes_per_change"] > 0
    # The churn's records were committed and acknowledged, in batches of at least one.
    assert metrics["consumer_commit_delay_count"] > 0 and metrics["producer_ack_count"] > 0
    assert metrics["consumer_batch_records_mean"] >= 1
    assert 0 < metrics["consumer_write_busy"] < 1
    # Fetch sessions: a request names only partitions whose offset moved, never more
    # than the consumer reads.
    assert metrics["consumer_fetches_per_s"] > 0
    assert 0 <= metrics["consumer_fetch_partitions_per_request"] <= 2 * params["partitions"]
    assert 0 < metrics["consumer_commit_delay_p50_ms"] <= metrics["consumer_commit_delay_p99_ms"]
    assert 0 < metrics["producer_ack_p50_ms"] <= metrics["producer_ack_p99_ms"]
    assert all(not math.isnan(float(v)) for v in metrics.values())
    # Every baseline read the same records the producers wrote.
    assert metrics["aiokafka_records"] == metrics["ours_records"] > 0
    assert metrics["quix_per_s"] > 0 and metrics["ours_to_quix_ratio"] > 0
    assert params["clusters"] == 2 and params["objects"] == 50
    assert series["latencies_ms"] and len(series["samples"]) >= 2
    # Two PNGs beside the JSON (matplotlib comes with the bench extra).
    written = write_plots(tmp_path / "report.json", series)
    assert len(written) == 2 and all(p.exists() and p.stat().st_size > 0 for p in written)


@pytest.mark.parametrize(
    ("args", "partitions"), [([], None), (["--partitions", "4"], 4), (["--large"], 1)]
)
def test_e2e_options_fall_back_to_the_producers_defaults(
    monkeypatch: pytest.MonkeyPatch, args: list[str], partitions: int | None
) -> None:
    """Without --partitions the run's topics get what a producer would create (a
    hard-coded 3 here once outlived the producer's change to 1)."""
    from click.testing import CliRunner

    import bench.e2e
    from producers.config import TopicConfig

    seen: list[E2eConfig] = []

    async def fake_run(cfg: E2eConfig, partial: object) -> None:
        seen.append(cfg)
        raise KeyboardInterrupt  # stop before anything starts

    monkeypatch.setattr(bench.e2e, "run_e2e", fake_run)
    monkeypatch.setattr(bench.e2e, "interrupt_on_sigterm", lambda: None)
    CliRunner().invoke(bench.e2e.command, args)
    assert len(seen) == 1
    expected = partitions if partitions is not None else TopicConfig().partitions
    assert seen[0].partitions == expected
    assert E2eConfig().partitions == TopicConfig().partitions

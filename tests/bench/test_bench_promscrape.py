"""Stage histograms: parsed from real /metrics pages, summed over labels and processes,
subtracted between scrapes, and read as histogram_quantile would."""

from __future__ import annotations

import math

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench.promscrape import (
    ScrapeError,
    histograms,
    merged,
    phase_stage_metrics,
    scrape,
    stage_histograms,
)
from plumbing.health import HealthServer, HealthServerConfig

BUCKETS = (0.1, 0.5, 1.0)
NAME = "kubedelta_producer_ack_latency_seconds"


def registry_with(observations: dict[str, list[float]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    hist = Histogram(NAME, "ack", ["cluster"], buckets=BUCKETS, registry=registry)
    for cluster, values in observations.items():
        for value in values:
            hist.labels(cluster).observe(value)
    return registry


def page(observations: dict[str, list[float]]) -> str:
    return generate_latest(registry_with(observations)).decode()


def test_label_sets_are_summed_per_bucket() -> None:
    found = histograms(page({"a": [0.05, 0.7], "b": [0.3, 2.0]}), [NAME, "absent"])

    assert set(found) == {NAME}
    hist = found[NAME]
    assert hist.bounds == (0.1, 0.5, 1.0, math.inf)
    assert hist.counts == (1, 2, 3, 4)
    assert hist.count == 4
    assert hist.total == pytest.approx(3.05)


def test_quantiles_interpolate_within_buckets_like_prometheus() -> None:
    # 10 observations in (0.1, 0.5]: the median sits halfway through that bucket.
    hist = histograms(page({"a": [0.2] * 10}), [NAME])[NAME]

    assert hist.quantile(0.5) == pytest.approx(0.3)
    assert hist.quantile(1.0) == pytest.approx(0.5)
    assert hist.mean() == pytest.approx(0.2)
    # Above the highest finite bound: that bound, as histogram_quantile answers.
    assert histograms(page({"a": [5.0]}), [NAME])[NAME].quantile(0.99) == 1.0
    assert math.isnan(histograms(page({}), [NAME])[NAME].quantile(0.5))
    with pytest.raises(ScrapeError):
        hist.quantile(1.5)


def test_a_phase_is_the_difference_of_two_scrapes() -> None:
    registry = CollectorRegistry()
    acks = Histogram(NAME, "ack", ["cluster"], buckets=BUCKETS, registry=registry)
    for _ in range(100):
        acks.labels("a").observe(0.05)
    before = histograms(generate_latest(registry).decode(), [NAME])
    for _ in range(10):
        acks.labels("a").observe(0.7)
    after = histograms(generate_latest(registry).decode(), [NAME])

    phase = after[NAME].minus(before[NAME])
    assert phase.count == 10
    assert 0.5 < phase.quantile(0.5) <= 1.0  # the 100 earlier fast acks are not in it
    stages = phase_stage_metrics(before, after, phase_s=2.0)
    assert stages["producer_ack_count"] == 10
    assert stages["producer_ack_mean_ms"] == pytest.approx(700)
    assert 500 < stages["producer_ack_p50_ms"] <= stages["producer_ack_p99_ms"] <= 1000


def test_counters_subtract_like_histograms_and_give_the_fetch_metrics() -> None:
    registry = CollectorRegistry()
    requests = Counter("kubedelta_consumer_fetch_requests", "fetches", ["kind"], registry=registry)
    named = Counter("kubedelta_consumer_fetch_partitions_named", "named", registry=registry)
    names = ["kubedelta_consumer_fetch_requests", "kubedelta_consumer_fetch_partitions_named"]
    requests.labels("full").inc()
    named.inc(1000)
    before = histograms(generate_latest(registry).decode(), names)
    requests.labels("incremental").inc(40)
    named.inc(60)
    after = histograms(generate_latest(registry).decode(), names)

    assert before[names[0]].count == 1 and after[names[0]].count == 41  # labels summed
    stages = phase_stage_metrics(before, after, phase_s=2.0)
    assert stages["consumer_fetches_per_s"] == 20
    assert stages["consumer_fetch_partitions_per_request"] == 1.5


def test_processes_add_up_and_mismatched_buckets_are_refused() -> None:
    one = histograms(page({"a": [0.05]}), [NAME])[NAME]
    two = histograms(page({"b": [0.7, 0.8]}), [NAME])[NAME]
    total = merged([one, two])
    assert total is not None and total.count == 3 and total.counts[0] == 1
    assert merged([]) is None

    other = CollectorRegistry()
    Histogram(NAME, "ack", buckets=(1.0, 2.0), registry=other).observe(1.5)
    different = histograms(generate_latest(other).decode(), [NAME])[NAME]
    with pytest.raises(ScrapeError):
        merged([one, different])
    with pytest.raises(ScrapeError):
        one.minus(different)


def test_an_unreadable_page_is_a_scrape_error() -> None:
    with pytest.raises(ScrapeError):
        histograms('kubedelta_x_bucket{le="0.1" 3\n', [NAME])


async def test_pages_are_read_over_http_and_a_dead_one_is_a_scrape_error() -> None:
    server = HealthServer(
        HealthServerConfig("127.0.0.1", 0), registry_with({"a": [0.3]}), ready=lambda: True
    )
    url = await server.start()
    try:
        found = await stage_histograms({"producers": [f"{url}/metrics", f"{url}/metrics"]})
        assert found[NAME].count == 2  # two producer pages, summed
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ScrapeError):
                await scrape(session, f"{url}/nothing-here")
    finally:
        await server.stop()
    with pytest.raises(ScrapeError):
        await stage_histograms({"consumer": [f"{url}/metrics"]})

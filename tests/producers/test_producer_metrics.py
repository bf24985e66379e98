"""Per-kind producer metrics: plain tallies that the registry exposes at scrape time
with the names and labels prometheus_client children would have."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from producers.metrics import RELIST_REASONS, RESTART_REASONS, ProducerMetrics


def test_kind_tallies_are_shared_and_scraped_with_their_labels() -> None:
    registry = CollectorRegistry()
    metrics = ProducerMetrics(registry)
    pods = metrics.for_kind("c1", "pods")
    assert metrics.for_kind("c1", "pods") is pods  # the emitter's and the reflector's
    pods.listed.inc(3)
    pods.modified.inc()
    pods.sent_upsert.inc(2)
    pods.unchanged.inc()
    pods.objects.set(42)
    pods.relists["gone"].inc()
    pods.restarts["throttled"].inc()
    metrics.for_kind("c2", "configmaps").deleted.inc()

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("kubedelta_producer_events_observed_total", cluster="c1", kind="pods",
                  event="LISTED") == 3  # fmt: skip
    assert sample("kubedelta_producer_events_observed_total", cluster="c1", kind="pods",
                  event="MODIFIED") == 1  # fmt: skip
    assert sample("kubedelta_producer_records_sent_total", cluster="c1", kind="pods",
                  op="upsert") == 2  # fmt: skip
    assert sample("kubedelta_producer_events_suppressed_total", cluster="c1", kind="pods",
                  reason="unchanged") == 1  # fmt: skip
    assert sample("kubedelta_producer_objects", cluster="c1", kind="pods") == 42
    assert sample("kubedelta_producer_relists_total", cluster="c1", kind="pods",
                  reason="gone") == 1  # fmt: skip
    assert sample("kubedelta_producer_watch_restarts_total", cluster="c1", kind="pods",
                  reason="throttled") == 1  # fmt: skip
    assert sample("kubedelta_producer_events_observed_total", cluster="c2",
                  kind="configmaps", event="DELETED") == 1  # fmt: skip
    # Every series of a known kind is there from the start, at 0 (rate() needs it).
    assert sample("kubedelta_producer_events_observed_total", cluster="c2",
                  kind="configmaps", event="ADDED") == 0  # fmt: skip
    text = generate_latest(registry).decode()
    for reason in (*RELIST_REASONS, *RESTART_REASONS):
        assert f'kind="configmaps",reason="{reason}"' in text
    assert "# TYPE kubedelta_producer_events_observed_total counter" in text
    assert "# TYPE kubedelta_producer_objects gauge" in text

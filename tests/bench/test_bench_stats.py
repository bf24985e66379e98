"""Pure arithmetic of the load benchmarks: percentiles, state comparison, rates,
SSE parsing, broker directory names, poller extrapolation."""

from __future__ import annotations

import math

from bench.feedwatch import SseEvent, SseParser
from bench.kafkadisk import partition_dir_topic
from bench.poller import PollerAccounting
from bench.simclient import GZIP_THRESHOLD_BYTES, KindRef, ListResult, gzip_wire_bytes, parse_list
from bench.stats import compare_states, mean, per_hour, percentile, rates, without_nan


def test_percentile_interpolates_like_numpy() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert math.isclose(percentile(values, 95), 95.05)
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_mean_of_nothing_is_nan() -> None:
    assert mean([1.0, 2.0, 6.0]) == 3.0
    assert math.isnan(mean([]))


def test_compare_states_counts_missing_extra_and_stale() -> None:
    expected = {"a": "1", "b": "2", "c": "3"}
    actual = {"a": "1", "b": "9", "d": "4"}
    diff = compare_states(expected, actual)
    assert (diff.missing, diff.extra, diff.stale, diff.total) == (1, 1, 1, 3)
    assert any("stale" in e for e in diff.examples)
    assert compare_states(expected, dict(expected)).total == 0


def test_rates_of_a_cumulative_counter() -> None:
    assert rates([(0.0, 0.0), (2.0, 10.0), (4.0, 10.0)]) == [(1.0, 5.0), (3.0, 0.0)]
    assert rates([(1.0, 5.0)]) == []


def test_per_hour_extrapolates_a_window() -> None:
    assert per_hour(10.0, 60.0) == 600.0


def test_sse_parser_handles_split_frames_comments_and_multiline_data() -> None:
    parser = SseParser()
    frames = b'id: 7\nevent: change\ndata: {"a":\ndata: 1}\n\n: heartbeat\n\nid: 8\nevent: change\ndata: x\n\n'
    events: list[SseEvent] = []
    for i in range(0, len(frames), 5):  # arbitrary chunking
        events.extend(parser.feed(frames[i : i + 5]))
    assert [(e.event_id, e.event, e.data) for e in events] == [
        ("7", "change", b'{"a":\n1}'),
        ("8", "change", b"x"),
    ]


def test_partition_directory_names_map_to_topics() -> None:
    assert partition_dir_topic("kdbench-ab12.c-1-0") == "kdbench-ab12.c-1"
    assert partition_dir_topic("kubedelta.cluster.prod-12") == "kubedelta.cluster.prod"


def test_parse_list_keeps_identity_and_version() -> None:
    kind = KindRef("apps", "v1", "Deployment", "deployments", True)
    body = (
        b'{"kind":"DeploymentList","metadata":{"resourceVersion":"42","continue":"tok"},'
        b'"items":[{"metadata":{"name":"web","namespace":"a","resourceVersion":"7"}}]}'
    )
    into = ListResult()
    token, rv = parse_list(body, kind, into, with_names=True)
    assert (token, rv) == ("tok", "42")
    assert into.versions == {("apps", "Deployment", "a", "web"): "7"}
    assert into.names == ["web"]


def test_gzip_only_above_the_api_server_threshold() -> None:
    small = b"x" * 1000
    assert gzip_wire_bytes(small) == len(small)
    big = b'{"a":"b"},' * (GZIP_THRESHOLD_BYTES // 5)
    assert gzip_wire_bytes(big) < len(big) // 10


def test_poller_accounting_extrapolates_per_cycle_averages() -> None:
    acc = PollerAccounting()
    listed = ListResult(calls=3, body_bytes=3000, gzip_bytes=500, names=["x", "kd-probe-1"])
    acc.add_list("c1", listed, completed_at=100.0, probe_prefix="kd-probe-")
    acc.add_list("c1", listed, completed_at=130.0, probe_prefix="kd-probe-")
    acc.add_cycle(2.0)
    acc.add_cycle(4.0)
    # 2 cycles, 6 calls: 3 per cycle, 120 cycles/hour at a 30 s interval.
    assert acc.per_hour(acc.api_calls, 30.0) == 360.0
    assert acc.per_hour(acc.gzip_bytes, 30.0) == 500 * 120
    # A cycle longer than the interval sets the pace.
    acc.add_cycle(60.0)
    assert acc.cycles_per_hour(30.0) == 60.0
    seen, unseen = acc.staleness([("c1", "kd-probe-1", 90.0), ("c1", "kd-probe-2", 95.0)])
    assert seen == [10.0]  # first sighting counts
    assert unseen == 1


def test_metrics_without_a_value_are_left_out() -> None:
    kept, missing = without_nan({"a": 1.0, "b": math.nan, "ok": True, "n": 3})
    assert kept == {"a": 1.0, "ok": True, "n": 3}
    assert missing == ["b"]

"""Pure parts of `kubedelta bench query`: wrk output and SSE frame parsing."""

from __future__ import annotations

from pathlib import Path

from bench.query import QueryBenchConfig, _frame_times, fill, parse_wrk
from deltas import Op
from query.feed import change_event
from store import Change, StoreOptions, View
from store import layout as L
from store.db import open_secondary

WRK = """Running 10s test @ http://127.0.0.1:8080
  1 threads and 8 connections
  Latency Distribution
     50%  635.00us
     75%    1.10ms
     90%    2.01ms
     99%    4.33ms
  20116 requests in 10.01s, 45.61MB read
  Non-2xx or 3xx responses: 3
Requests/sec:   2009.42
Transfer/sec:      4.56MB
"""


def test_parse_wrk() -> None:
    result = parse_wrk(WRK)
    assert result.rps == 2009.42
    assert result.p50_ms == 0.635
    assert result.p99_ms == 4.33
    assert result.errors == 3


def test_frame_times_reads_the_feed_format() -> None:
    frames = [
        change_event(
            Change(7, "c1", "", "Pod", "ns", "p", Op.UPSERT, "42", 1_700_000_000_123),
            b'{"metadata":{"name":"p","eventTimeMs":1}}',
        ),
        b": keepalive\n\n",
        change_event(Change(8, "c1", "", "Pod", "ns", "p", Op.DELETE, "", 1_700_000_000_456), None),
    ]
    stream = b"".join(frames)
    parts = stream.split(b"\n\n")
    assert list(_frame_times(parts)) == [(7, 1_700_000_000_123), (8, 1_700_000_000_456)]


def test_fill_leaves_every_object_readable_and_the_store_compacted(tmp_path: Path) -> None:
    config = QueryBenchConfig(resources=3_000, clusters=2, batch=500)
    keys, rate = fill(config, tmp_path / "store", "bq")
    assert keys and rate > 0
    with View.open(tmp_path / "store", StoreOptions(topic_prefix="bq")) as view:
        assert all(view.get(c, "", "Pod", ns, name) is not None for c, ns, name in keys)
    # Compacted: no column family has a file left in L0.
    handles = open_secondary(tmp_path / "store", tmp_path / "secondary", StoreOptions())
    try:
        for cf in L.ALL_CFS:
            assert handles.cfs[cf].property_int_value("rocksdb.num-files-at-level0") == 0, cf
    finally:
        handles.close()

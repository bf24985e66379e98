"""The WATCH path without a broker: the stream's chunks split into lines (however the
chunks fall), and ``Reflector.watch_once`` turning those lines into records, resume
points and errors. The API response is faked at the HTTP layer (``KubeApi._open``), so
``KubeApi.watch_lines`` and the reflector run as in production; a last test watches the
simulator over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client as k8s_client
from prometheus_client import CollectorRegistry
from test_producer_emitter import PARTITIONS, PODS, ListSink, make, pod

from deltas import decode
from producers import apiclient
from producers.apiclient import HttpPool, KubeApi, WatchLines
from producers.config import ApiConnectionConfig, SinkConfig, WatchConfig
from producers.errors import ApiUnavailableError, ResourceGoneError
from producers.ledger import Ledger
from producers.metrics import ProducerMetrics
from producers.records import OutRecord
from producers.reflector import Reflector
from producers.sink import KafkaSink
from simulator import Simulator, SimulatorConfig

# -- lines -------------------------------------------------------------------------


def reference_lines(stream: bytes) -> list[bytes]:
    """What a watch stream holds: its non-empty lines, and an unterminated last line
    unless it is only whitespace."""
    *lines, last = stream.split(b"\n")
    return [line for line in lines if line] + ([last] if last.strip() else [])


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted({min(c, len(stream)) for c in cuts}), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def fed(chunks: list[bytes]) -> list[bytes]:
    lines = WatchLines("/api/v1/pods")
    out = [bytes(line) for chunk in chunks for line in lines.feed(chunk)]
    last = lines.end()
    return out + ([bytes(last)] if last is not None else [])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"", b" ", b"{}", b'{"a":1}', b"x" * 40, b"\r"]), max_size=12),
    st.booleans(),
    st.lists(st.integers(0, 600), max_size=8),
)
def test_lines_do_not_depend_on_where_chunks_end(
    parts: list[bytes], terminated: bool, cuts: list[int]
) -> None:
    stream = b"\n".join(parts) + (b"\n" if terminated else b"")
    assert fed(split(stream, cuts)) == reference_lines(stream)


def test_a_line_is_a_view_of_its_chunk_unless_it_spans_chunks() -> None:
    lines = WatchLines("/p")
    chunk = b'{"a":1}\n{"b":'
    (first,) = lines.feed(chunk)
    assert first.obj is chunk  # no copy
    (second,) = lines.feed(b"2}\n")
    assert bytes(second) == b'{"b":2}'
    assert lines.end() is None


def test_an_endless_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apiclient, "MAX_WATCH_LINE", 10)
    lines = WatchLines("/p")
    assert [bytes(x) for x in lines.feed(b"0123456789ab\n0123")] == [b"0123456789ab"]
    with pytest.raises(ApiUnavailableError, match="over 10 bytes"):
        lines.feed(b"4567890")


# -- the reflector ---------------------------------------------------------------------


class _Content:
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def iter_any(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _Response:
    def __init__(self, chunks: list[bytes]) -> None:
        self.content = _Content(chunks)

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Transport:
    generation = 1

    async def send(self, topic: str, partition: int, records: list[OutRecord]) -> tuple[int, int]:
        raise AssertionError("the sink is never started")

    async def reset(self, seen_generation: int) -> None:
        pass


def served(name: str, rv: str, phase: str = "Running") -> dict[str, Any]:
    """A Pod as a WATCH event carries it (with kind/apiVersion)."""
    obj = pod(name, rv, phase)
    obj["metadata"]["labels"] = {"app": "web"}
    return {"kind": "Pod", "apiVersion": "v1", **obj}


def event(kind: str, obj: Any) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def reflector_over(
    stream: bytes, monkeypatch: pytest.MonkeyPatch, chunk: int = 7
) -> tuple[Reflector, ListSink]:
    """A reflector whose next WATCH serves ``stream`` in ``chunk``-byte pieces."""
    emitter, sink, _, _ = make()
    api = KubeApi(k8s_client.Configuration(host="http://api.invalid"), HttpPool())

    async def _open(*args: Any, **kwargs: Any) -> _Response:
        return _Response([stream[i : i + chunk] for i in range(0, len(stream), chunk)])

    monkeypatch.setattr(api, "_open", _open)
    metrics = ProducerMetrics(CollectorRegistry())
    kafka = KafkaSink("c1", "t", PARTITIONS, _Transport(), SinkConfig(), metrics)
    reflector = Reflector("c1", api, emitter, kafka, WatchConfig(), metrics, asyncio.Semaphore(1))
    reflector.resume_rv = "1"
    return reflector, sink


def records_of_events(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    """What the emitter sends for ``events`` given as raw JSON (the reference path)."""
    emitter, sink, _, _ = make()
    for kind, obj in events:
        emitter.event(kind, orjson.dumps(obj), 0.0)
    return [wire(r) for r in sink.records]


def wire(r: OutRecord) -> tuple[Any, ...]:
    """A record as it reaches Kafka, its event time (a clock reading) zeroed."""
    value = None if r.value is None else dataclasses.replace(decode(r.value), event_time_ms=0)
    return (r.partition, r.key, value, r.seq, r.op)


async def test_watch_events_become_the_records_the_emitter_makes_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a1, b1 = served("a", "11"), served("b", "12")
    a2 = served("a", "13", phase="Failed")
    a3 = served("a", "14", phase="Failed")  # only the resourceVersion changed: noise
    events = [("ADDED", a1), ("ADDED", b1), ("MODIFIED", a2), ("MODIFIED", a3), ("DELETED", b1)]
    stream = b"".join(event(kind, obj) for kind, obj in events)
    reflector, sink = reflector_over(stream, monkeypatch)
    await reflector.watch_once()
    assert [wire(r) for r in sink.records] == records_of_events(events)
    assert [r.op for r in sink.records] == ["upsert", "upsert", "upsert", "delete", "tombstone"]
    assert reflector.resume_rv == "12"  # the DELETED event's object's rv
    m = reflector.emitter._metrics
    assert (m.added.value, m.modified.value, m.deleted.value) == (2, 2, 1)
    assert (m.sent_upsert.value, m.unchanged.value, m.sent_delete.value) == (3, 1, 1)


def config_map(name: str, rv: str, data: str) -> dict[str, Any]:
    obj = served(name, rv)
    del obj["status"]
    return {**obj, "kind": "ConfigMap", "data": {"k": data}, "immutable": False}


@pytest.mark.parametrize(
    "objects",
    [
        # A top level other than apiVersion/kind/metadata/spec/status, first or later.
        [config_map("a", "11", "x"), served("b", "12"), config_map("a", "13", "y")],
        [served("b", "12"), config_map("a", "13", "y"), served("b", "14", phase="Failed")],
        [{**served("b", "12"), "spec": None}, {**served("b", "13"), "status": 5}],
        [{"metadata": {"name": "m", "resourceVersion": "20"}}, {"kind": "Pod", "metadata": {}}],
    ],
)
async def test_any_top_level_gives_the_records_the_emitter_makes(
    objects: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [("MODIFIED", obj) for obj in objects]
    stream = b"".join(event(kind, obj) for kind, obj in events)
    reflector, sink = reflector_over(stream, monkeypatch)
    await reflector.watch_once()
    assert [wire(r) for r in sink.records] == records_of_events(events)
    assert sink.records
    assert reflector.resume_rv == objects[-1]["metadata"].get("resourceVersion", "20")


async def test_bookmarks_move_the_resume_point_and_send_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bookmark = {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "99"}}
    stream = event("ADDED", served("a", "5")) + event("BOOKMARK", bookmark)
    reflector, sink = reflector_over(stream, monkeypatch)
    await reflector.watch_once()
    assert [r.op for r in sink.records] == ["upsert"]
    assert reflector.resume_rv == "99"
    # The same after an object with another top level.
    stream = event("ADDED", config_map("c", "6", "x")) + event("BOOKMARK", bookmark)
    reflector, sink = reflector_over(stream, monkeypatch)
    await reflector.watch_once()
    assert [r.op for r in sink.records] == ["upsert"]
    assert reflector.resume_rv == "99"


@pytest.mark.parametrize(
    "line",
    [
        b'{"type":"ADDED","object":null}\n',
        b'{"type":"ADDED","object":"a string"}\n',
        b'{"type":"ADDED","object":[1,2]}\n',
        b'{"type":"ADDED"}\n',
        b'{"type":"ERROR","object":7}\n',
        b"\n\n",
    ],
)
async def test_events_without_an_object_are_skipped(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = line + event("MODIFIED", served("a", "8"))
    reflector, sink = reflector_over(stream, monkeypatch)
    await reflector.watch_once()
    assert [r.op for r in sink.records] == ["upsert"]
    assert reflector.resume_rv == "8"


async def test_an_object_without_a_name_is_not_sent_but_still_moves_the_resume_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nameless = {"kind": "Pod", "metadata": {"resourceVersion": "30", "namespace": "d"}}
    reflector, sink = reflector_over(event("MODIFIED", nameless), monkeypatch)
    await reflector.watch_once()
    assert sink.records == []
    assert reflector.resume_rv == "30"


@pytest.mark.parametrize("line", [b"not json\n", b'{"type":"ADDED","object":{"a":}\n', b"[1]\n"])
async def test_a_line_that_is_no_event_breaks_the_watch(
    line: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reflector, _ = reflector_over(line, monkeypatch)
    with pytest.raises(ApiUnavailableError, match="not an event"):
        await reflector.watch_once()


async def test_error_events_raise_by_their_status_code(monkeypatch: pytest.MonkeyPatch) -> None:
    gone = {"kind": "Status", "code": 410, "message": "too old resource version: 1 (5)"}
    reflector, _ = reflector_over(event("ERROR", gone), monkeypatch)
    with pytest.raises(ResourceGoneError):
        await reflector.watch_once()
    broken = {"kind": "Status", "code": 500, "message": "etcd is sad"}
    reflector, _ = reflector_over(event("ERROR", broken), monkeypatch)
    with pytest.raises(ApiUnavailableError, match="etcd is sad") as raised:
        await reflector.watch_once()
    assert not isinstance(raised.value, ResourceGoneError)


async def test_relist_then_watch_against_the_simulator() -> None:
    """Over HTTP: changes made after the LIST arrive through the WATCH."""
    sim = Simulator(SimulatorConfig(clusters=("w1",), objects_per_cluster=40, seed=5))
    cluster = sim.cluster("w1")
    async with sim.serve() as base:
        api = await KubeApi.connect(ApiConnectionConfig(url=f"{base}/clusters/w1"))
        try:
            ledger = Ledger(PARTITIONS)
            emitter, sink, _, _ = make(ledger)
            metrics = ProducerMetrics(CollectorRegistry())
            kafka = KafkaSink("w1", "t", PARTITIONS, _Transport(), SinkConfig(), metrics)
            config = WatchConfig(watch_timeout_min_s=1, watch_timeout_max_s=1)
            reflector = Reflector(
                "w1", api, emitter, kafka, config, metrics, asyncio.Semaphore(1),
                rng=random.Random(1),
            )  # fmt: skip
            await reflector.relist()
            listed = len(ledger.kind(PODS.group_kind))
            target = cluster.random_object("", "Pod", random.Random(2))
            assert target is not None
            target["status"] = {"phase": "Succeeded"}
            cluster.update(target)
            meta = target["metadata"]
            sink.take()
            await reflector.watch_once()
            sent = sink.take()
            assert [(r.op, r.key.split(b"\x00")[3].decode()) for r in sent] == [
                ("upsert", meta["name"])
            ]
            current = cluster.get("", "Pod", meta["namespace"], meta["name"])
            assert current is not None
            assert reflector.resume_rv == current["metadata"]["resourceVersion"]
            assert len(ledger.kind(PODS.group_kind)) == listed
        finally:
            await api.close()

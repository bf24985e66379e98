"""Emitter + ledger + read-back, pure: relist diffs, noise suppression, digests,
and a restart that resends only what changed. The sink is an in-memory list."""

from __future__ import annotations

import copy
from typing import Any

from prometheus_client import CollectorRegistry

from deltas import Op, RunningDigest, decode, partition_for
from producers.config import StripConfig
from producers.emitter import KindEmitter
from producers.kinds import KindRef, NamespaceFilter
from producers.ledger import Ledger
from producers.metrics import ProducerMetrics
from producers.records import OutRecord, RecordFactory
from producers.restore import TopicState

PODS = KindRef("", "v1", "Pod", "pods", True)
PARTITIONS = 3


class ListSink:
    def __init__(self) -> None:
        self.records: list[OutRecord] = []

    def submit(self, record: OutRecord) -> None:
        self.records.append(record)

    def take(self) -> list[OutRecord]:
        out, self.records = self.records, []
        return out


def make(
    ledger: Ledger | None = None, namespaces: NamespaceFilter | None = None
) -> tuple[KindEmitter, ListSink, Ledger, RecordFactory]:
    ledger = ledger or Ledger(PARTITIONS)
    sink = ListSink()
    factory = RecordFactory("c1", PARTITIONS, "s1")
    metrics = ProducerMetrics(CollectorRegistry()).for_kind("c1", "pods")
    emitter = KindEmitter(
        PODS,
        ledger.kind(PODS.group_kind),
        factory,
        sink,
        StripConfig(),
        namespaces or NamespaceFilter(),
        metrics,
    )
    return emitter, sink, ledger, factory


def pod(name: str, rv: str, phase: str = "Running", ns: str = "default") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": rv},
        "status": {"phase": phase},
    }


def ops(records: list[OutRecord]) -> list[tuple[str, str]]:
    out = []
    for r in records:
        if r.op in ("upsert", "delete"):
            out.append((r.op, r.key.split(b"\x00")[3].decode()))
    return out


def relist(emitter: KindEmitter, objects: list[dict[str, Any]]) -> None:
    emitter.begin_relist()
    for obj in objects:
        emitter.listed(copy.deepcopy(obj), 0.0)
    emitter.end_relist()


def expected_digests(ledger: Ledger) -> list[tuple[int, int]]:
    digests = [RunningDigest() for _ in range(PARTITIONS)]
    kind = ledger.kind(PODS.group_kind)
    for key in kind.snapshot_keys():
        entry = kind.get(key)
        assert entry is not None
        digests[partition_for(key, PARTITIONS)].add(key, entry.resource_version)
    return [(d.count, d.hash) for d in digests]


def test_relist_after_gap_sends_changed_and_new_objects_and_deletes_vanished() -> None:
    emitter, sink, ledger, _ = make()
    relist(emitter, [pod(f"p{i}", "1") for i in range(5)])
    first = sink.take()
    assert sorted(ops(first)) == [("upsert", f"p{i}") for i in range(5)]
    markers = [r for r in first if r.op == "relist"]
    assert len(markers) == 2 * PARTITIONS
    assert {r.partition for r in markers} == set(range(PARTITIONS))

    relist(
        emitter,
        [
            pod("p0", "1"),  # unchanged
            pod("p1", "7", phase="Failed"),  # content changed
            pod("p2", "8"),  # resourceVersion-only change: noise
            pod("p9", "9"),  # new
        ],  # p3, p4 vanished
    )
    second = sink.take()
    assert sorted(ops(second)) == [
        ("delete", "p3"),
        ("delete", "p4"),
        ("upsert", "p1"),
        ("upsert", "p9"),
    ]
    tombstones = [r for r in second if r.op == "tombstone"]
    assert sorted(r.key for r in tombstones) == sorted(
        r.key for r in second if r.op == "delete"
    ) and all(r.value is None for r in tombstones)
    # Start markers precede everything of the relist, end markers follow it.
    assert [r.op for r in second[:PARTITIONS]] == ["relist"] * PARTITIONS
    assert [r.op for r in second[-PARTITIONS:]] == ["relist"] * PARTITIONS
    ends = [decode(r.value) for r in second[-PARTITIONS:] if r.value is not None]
    assert all(d.op is Op.RELIST_END and d.relist and not d.relist.full for d in ends)
    assert len(ledger) == 4
    assert [(d.count, d.hash) for d in ledger.digests] == expected_digests(ledger)
    # p2's noise update kept the resourceVersion last sent ("1") for the digest.
    p2 = next(k for k in ledger.kind(PODS.group_kind).snapshot_keys() if k.endswith(b"p2"))
    entry = ledger.kind(PODS.group_kind).get(p2)
    assert entry is not None and entry.resource_version == "1"


def test_watch_events_noise_only_updates_send_nothing() -> None:
    emitter, sink, _, _ = make()
    emitter.event("ADDED", pod("a", "1"), 0.0)
    noisy = pod("a", "2")
    noisy["metadata"]["managedFields"] = [{"manager": "x"}]
    emitter.event("MODIFIED", noisy, 0.0)
    emitter.event("MODIFIED", pod("a", "3", phase="Succeeded"), 0.0)
    emitter.event("DELETED", pod("a", "4", phase="Succeeded"), 0.0)
    emitter.event("DELETED", pod("never-seen", "5"), 0.0)
    records = sink.take()
    assert [r.op for r in records] == ["upsert", "upsert", "delete", "tombstone"]
    seqs = [r.seq for r in records if r.op != "tombstone"]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    delete = decode(records[2].value or b"")
    assert delete.op is Op.DELETE and delete.resource_version == "4" and delete.uid == "uid-a"


def test_upsert_record_carries_index_fields_and_sorted_json_body() -> None:
    emitter, sink, _, _ = make()
    obj = pod("a", "1")
    obj["metadata"]["labels"] = {"app": "web"}
    obj["metadata"]["ownerReferences"] = [{"uid": "rs-1", "kind": "ReplicaSet", "name": "rs"}]
    obj["metadata"]["annotations"] = {"moniker.spinnaker.io/application": "shop"}
    emitter.event("ADDED", obj, 0.0)
    (record,) = sink.take()
    delta = decode(record.value or b"")
    assert delta.labels == {"app": "web"} and delta.owners == ("rs-1",) and delta.app == "shop"
    assert (
        delta.key.kind == "Pod"
        and delta.key.namespace == "default"
        and delta.resource_version == "1"
    )
    assert record.partition == partition_for(record.key, PARTITIONS)
    assert delta.body.startswith(b'{"apiVersion":"v1","kind":"Pod","metadata"')


def test_namespace_filter_drops_objects_and_a_relist_deletes_restored_ones() -> None:
    emitter, sink, ledger, _ = make()
    relist(emitter, [pod("a", "1", ns="keep"), pod("b", "1", ns="drop")])
    assert sorted(ops(sink.take())) == [("upsert", "a"), ("upsert", "b")]
    filtered, sink2, _, _ = make(ledger, NamespaceFilter(exclude=frozenset({"drop"})))
    relist(filtered, [pod("a", "1", ns="keep"), pod("b", "1", ns="drop")])
    assert ops(sink2.take()) == [("delete", "b")]


def test_forget_all_deletes_every_object_of_the_kind() -> None:
    emitter, sink, ledger, _ = make()
    relist(emitter, [pod(f"p{i}", "1") for i in range(3)])
    sink.take()
    emitter.forget_all()
    assert sorted(ops(sink.take())) == [("delete", f"p{i}") for i in range(3)]
    assert len(ledger) == 0 and all(d.count == 0 and d.hash == 0 for d in ledger.digests)


def test_read_back_restores_the_ledger_so_a_restart_resends_only_changes() -> None:
    emitter, sink, ledger, _ = make()
    relist(emitter, [pod(f"p{i}", "1") for i in range(6)])
    emitter.event("MODIFIED", pod("p0", "2", phase="Failed"), 0.0)
    emitter.event("DELETED", pod("p5", "3"), 0.0)
    log = sink.take()

    restored = Ledger(PARTITIONS)
    state = TopicState(restored)
    for record in log:
        state.apply(record.key, record.value)
    assert len(restored) == 5
    assert state.stats.upserts == 7 and state.stats.deletes == 2
    assert [(d.count, d.hash) for d in restored.digests] == [
        (d.count, d.hash) for d in ledger.digests
    ]
    # The fingerprints read back are the emitter's (hashed from the bodies).
    for key in ledger.kind(PODS.group_kind).snapshot_keys():
        original, read_back = (
            ledger.kind(PODS.group_kind).get(key),
            restored.kind(PODS.group_kind).get(key),
        )
        assert original is not None and read_back is not None
        assert read_back.fingerprint == original.fingerprint

    restarted, sink2, _, _ = make(restored)
    relist(
        restarted,
        [pod("p0", "2", phase="Failed")]  # unchanged since the topic got it
        + [pod(f"p{i}", "1") for i in (1, 2, 3)]
        + [pod("p4", "9", phase="Pending")],  # changed while we were down
    )  # p5 already deleted; nothing else vanished
    assert ops(sink2.take()) == [("upsert", "p4")]

"""Churn's fast paths write exactly what the decode-and-encode paths write: resourceVersion
splicing, status writes that decode only metadata and status, and the cheaper uid,
resourceVersion, name and managedFields helpers."""

from __future__ import annotations

import base64
import random
import uuid
from typing import Any

import orjson
import pytest

from simulator import ClusterState, ObjectNotFoundError, Simulator, SimulatorConfig, encode_rv
from simulator.cluster import KindStore
from simulator.generator import (
    ObjectFactory,
    fields_v1,
    format_time,
    replica_pod_name,
    template_hash,
    uuid4_text,
)
from simulator.splice import (
    join_status,
    spec_replicas,
    split_status,
    time_mark,
    with_resource_version,
    with_spec_replicas,
)

Obj = dict[str, Any]
NOW_S = 1_720_000_000.0


def _generated(seed: int = 7, objects: int = 600) -> ClusterState:
    config = SimulatorConfig(clusters=("c1",), objects_per_cluster=objects, seed=seed)
    return Simulator(config).cluster("c1")


def _with_rv_decoded(body: bytes, rv: str) -> bytes:
    obj = orjson.loads(body)
    obj["metadata"]["resourceVersion"] = rv
    return orjson.dumps(obj)


def _stored(cluster: ClusterState, group: str, kind: str) -> list[tuple[bytes, int]]:
    return list(cluster.store_for(group, kind).records.values())


def _odd_pods() -> list[Obj]:
    """Pods whose layout the fast paths must not guess wrong."""
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u-1"}
    managed = [
        {"manager": "m", "operation": "Update", "time": "2024-01-01T00:00:00Z"},
        {"manager": "k", "time": "2024-01-01T00:00:00Z", "subresource": "status"},
    ]
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    tricky = 'x]},"status":{"a":1}\\ "q" {[é'
    return [
        # no managedFields at all
        {"metadata": {"name": "plain"}, "spec": {"a": 1}, "status": dict(status)},
        # status before spec: status is not the object's last field
        {"metadata": {"name": "early", "managedFields": managed}, "status": status, "spec": {}},
        # managedFields not the metadata's last field (an array after it)
        {"metadata": {"name": "fin", "managedFields": managed, "finalizers": ["f"]}, "status": {}},
        # a nested "status" object in the spec and no top-level status
        {"metadata": {"name": "nested", "managedFields": managed}, "spec": {"status": {"x": 1}}},
        # strings that contain the very byte patterns the splicers search for
        {
            "metadata": {
                "name": "tricky",
                "labels": {"l": tricky},
                "annotations": {tricky: tricky},
                "ownerReferences": [owner],
                "managedFields": managed,
            },
            "spec": {"note": tricky, "nested": {"status": {"y": [1, {"z": tricky}]}}},
            "status": {"message": tricky, **status},
        },
        # metadata values the cluster does not check, before resourceVersion
        {
            "metadata": {"name": "odd", "uid": {"resourceVersion": "saaaaaaaaaaab"}},
            "status": {},
        },
        {"metadata": {"name": "un{i}[c]ode-é"}, "status": {"phase": "Pending"}},
    ]


def _cluster_of(objects: list[Obj], kind: str = "Pod", api_version: str = "v1") -> ClusterState:
    cluster = ClusterState("c", history_size=1000, list_snapshots=4, rng=random.Random(1))
    for obj in objects:
        # A fixed creationTimestamp: clusters built a second apart must be equal.
        meta = {"creationTimestamp": "2024-05-01T00:00:00Z", **obj["metadata"]}
        cluster.create({"apiVersion": api_version, "kind": kind, **obj, "metadata": meta})
    return cluster


# -- resourceVersion splicing ----------------------------------------------------------------------
def test_resource_version_splice_equals_decode_and_encode_for_every_generated_object() -> None:
    cluster = _generated()
    new_rv = encode_rv(10**9 + 7)
    checked = 0
    for spec in cluster.kind_specs():
        for body, rv in _stored(cluster, spec.group, spec.kind):
            assert with_resource_version(body, encode_rv(rv), new_rv) == _with_rv_decoded(
                body, new_rv
            )
            checked += 1
    assert checked == 600


def test_resource_version_splice_is_exact_or_declines_for_odd_objects() -> None:
    cluster = _cluster_of(_odd_pods())
    new_rv = encode_rv(2**40 + 5)
    declined = 0
    for body, rv in _stored(cluster, "", "Pod"):
        spliced = with_resource_version(body, encode_rv(rv), new_rv)
        if spliced is None:
            declined += 1
        else:
            assert spliced == _with_rv_decoded(body, new_rv)
        assert with_resource_version(body, encode_rv(rv + 1), new_rv) is None  # not its rv
    assert declined == 2  # the uid that is an object, the name with braces


def test_delete_event_carries_the_last_state_with_a_new_resource_version() -> None:
    cluster = _cluster_of(_odd_pods())
    store = cluster.store_for("", "Pod")
    for key, (body, _) in list(store.records.items()):
        namespace, _, name = key.partition("/")
        cluster.delete("", "Pod", namespace, name)
        event = store.log[-1]
        assert event.type == b"DELETED" and event.rv == cluster.current_rv
        assert event.body == _with_rv_decoded(body, encode_rv(event.rv))


# -- status writes ---------------------------------------------------------------------------------
def test_split_status_round_trips_every_generated_pod() -> None:
    pods = _stored(_generated(), "", "Pod")
    assert pods
    for body, _ in pods:
        parts = split_status(body)
        assert parts is not None
        assert parts.status == orjson.loads(body)["status"]
        assert join_status(parts) == body


def test_split_status_declines_or_round_trips_odd_layouts() -> None:
    results = {}
    for body, _ in _stored(_cluster_of(_odd_pods()), "", "Pod"):
        parts = split_status(body)
        results[orjson.loads(body)["metadata"]["name"]] = parts is not None
        if parts is not None:
            assert join_status(parts) == body
            assert parts.status == orjson.loads(body)["status"]
    assert results == {
        "plain": False,
        "early": False,
        "fin": True,  # the whole metadata is decoded: its end is proven, not its order
        "nested": False,
        "tricky": True,
        "odd": False,
        "un{i}[c]ode-é": False,
    }


def _slow_status_write(
    cluster: ClusterState, rng: random.Random, make: ObjectFactory, now_s: float = NOW_S
) -> None:
    """What churn did before: decode the whole Pod, bump it, update it."""
    pod = cluster.random_object("", "Pod", rng)
    assert pod is not None
    cluster.update_quietly(make.bump_pod_status(pod, now_s))


def _fast_status_write(
    cluster: ClusterState, rng: random.Random, make: ObjectFactory, now_s: float = NOW_S
) -> None:
    now = format_time(now_s)
    assert cluster.update_random_status(
        "", "Pod", rng, lambda status: make.bump_status(status, now), now
    )


def _assert_same_state(a: KindStore, b: KindStore) -> None:
    assert a.records == b.records
    assert [(e.rv, e.type, e.key, e.namespace, e.body, e.prev) for e in a.log] == [
        (e.rv, e.type, e.key, e.namespace, e.body, e.prev) for e in b.log
    ]
    assert [a.event_line(e.type, e.body) for e in a.log] == [
        b.event_line(e.type, e.body) for e in b.log
    ]


@pytest.mark.parametrize("odd", [False, True])
def test_status_write_equals_decode_bump_and_update(odd: bool) -> None:
    fast, slow = (_cluster_of(_odd_pods()) if odd else _generated() for _ in range(2))
    rng_fast, rng_slow = random.Random(9), random.Random(9)
    make_fast, make_slow = ObjectFactory(random.Random(4)), ObjectFactory(random.Random(4))
    for _ in range(300):
        _fast_status_write(fast, rng_fast, make_fast)
        _slow_status_write(slow, rng_slow, make_slow)
    _assert_same_state(fast.store_for("", "Pod"), slow.store_for("", "Pod"))
    assert fast.current_rv == slow.current_rv
    modified = [e for e in fast.store_for("", "Pod").log if e.type == b"MODIFIED"]
    assert len(modified) == 300
    assert all(
        orjson.loads(e.body)["metadata"]["resourceVersion"] == encode_rv(e.rv) for e in modified
    )


@pytest.mark.parametrize("odd", [False, True])
def test_repeated_status_writes_splice_at_learned_positions_like_a_decode(odd: bool) -> None:
    """Few Pods, many writes: after its first status write a Pod's next ones are spliced
    at the positions that write learned. Byte for byte what decoding gives."""
    fast, slow = (_cluster_of(_odd_pods()) if odd else _generated(objects=60) for _ in range(2))
    rng_fast, rng_slow = random.Random(3), random.Random(3)
    make_fast, make_slow = ObjectFactory(random.Random(5)), ObjectFactory(random.Random(5))
    for second in range(1500):  # every write at another time: the times change too
        _fast_status_write(fast, rng_fast, make_fast, NOW_S + second)
        _slow_status_write(slow, rng_slow, make_slow, NOW_S + second)
    store = fast.store_for("", "Pod")
    _assert_same_state(store, slow.store_for("", "Pod"))
    # Positions are kept for the Pods written last by a status write, for their very body.
    assert store.status_splices
    assert all(s.body is store.records[key][0] for key, s in store.status_splices.items())
    if not odd:
        assert set(store.status_splices) == set(store.records)


def test_a_pod_holding_the_time_mark_is_written_right_without_learned_positions() -> None:
    marked = time_mark(len(format_time(NOW_S)))
    pod = {
        "metadata": {
            "name": "marked",
            "annotations": {"a": marked},
            "managedFields": [
                {"manager": "k", "time": "2024-01-01T00:00:00Z", "subresource": "status"}
            ],
        },
        "spec": {},
        "status": {"phase": "Pending"},
    }
    fast, slow = _cluster_of([pod]), _cluster_of([pod])
    for seed in range(3):
        _fast_status_write(fast, random.Random(seed), ObjectFactory(random.Random(seed)))
        _slow_status_write(slow, random.Random(seed), ObjectFactory(random.Random(seed)))
    _assert_same_state(fast.store_for("", "Pod"), slow.store_for("", "Pod"))
    assert fast.store_for("", "Pod").status_splices == {}
    body = fast.store_for("", "Pod").records["default/marked"][0]
    assert orjson.loads(body)["metadata"]["annotations"]["a"] == marked


def test_other_writes_forget_the_learned_positions() -> None:
    cluster = _generated(objects=60)
    rng, make = random.Random(2), ObjectFactory(random.Random(2))
    for _ in range(50):
        _fast_status_write(cluster, rng, make)
    store = cluster.store_for("", "Pod")
    key = next(iter(store.status_splices))
    namespace, name = key.split("/", 1)
    pod = cluster.get("", "Pod", namespace, name)
    assert pod is not None
    pod["metadata"].setdefault("labels", {})["touched"] = "yes"
    cluster.update(pod)
    assert key not in store.status_splices
    deleted = next(iter(store.status_splices))
    cluster.delete("", "Pod", *deleted.split("/", 1))
    assert deleted not in store.status_splices


def test_status_write_on_an_empty_kind_changes_nothing() -> None:
    cluster = ClusterState("c", history_size=10, list_snapshots=4, rng=random.Random(1))
    assert not cluster.update_random_status("", "Pod", random.Random(1), lambda s: None, "t")
    assert cluster.current_rv == 0


# -- scale writes ----------------------------------------------------------------------------------
def _scale_edit(meta: Obj, replicas: int, status: Obj) -> int:
    """A Deployment/ReplicaSet scale as churn makes it (metadata, status, a new count)."""
    meta["generation"] = int(meta.get("generation", 1)) + 1
    status.update({"replicas": replicas + 1, "observedGeneration": meta["generation"]})
    meta.setdefault("annotations", {})["scaled"] = str(replicas + 1)
    return replicas + 1


def _slow_scale(cluster: ClusterState, kind: str, namespace: str, name: str) -> None:
    obj = cluster.get("apps", kind, namespace, name)
    assert obj is not None
    replicas = int(obj["spec"].get("replicas", 1))
    obj["spec"]["replicas"] = _scale_edit(obj["metadata"], replicas, obj.setdefault("status", {}))
    cluster.update_quietly(obj)


def _odd_workloads() -> list[Obj]:
    managed = [{"manager": "m", "time": "2024-01-01T00:00:00Z"}]
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}
    return [
        {"metadata": {"name": "unset", "managedFields": managed}, "spec": {"template": template}},
        {
            "metadata": {"name": "second", "managedFields": managed},
            "spec": {"paused": False, "replicas": 2},
            "status": {},
        },
        {"metadata": {"name": "float", "managedFields": managed}, "spec": {"replicas": 2.0}},
        {
            "metadata": {"name": "nostatus", "managedFields": managed},
            "spec": {"replicas": 12, "template": template},
        },
        {
            "metadata": {"name": "ok", "managedFields": managed},
            "spec": {"replicas": 0, "template": template},
            "status": {"replicas": 0},
        },
    ]


@pytest.mark.parametrize("odd", [False, True])
def test_scale_write_equals_decode_edit_and_update(odd: bool) -> None:
    if odd:
        fast, slow = (_cluster_of(_odd_workloads(), "Deployment", "apps/v1") for _ in range(2))
        kinds = ["Deployment"]
    else:
        fast, slow = _generated(), _generated()
        kinds = ["Deployment", "ReplicaSet", "StatefulSet"]
    for kind in kinds:
        keys = sorted(fast.store_for("apps", kind).records)
        assert keys
        for _ in range(2):  # twice: the second write starts from what the first wrote
            for key in keys:
                namespace, _, name = key.rpartition("/")
                fast.update_scale("apps", kind, namespace, name, _scale_edit)
                _slow_scale(slow, kind, namespace, name)
        _assert_same_state(fast.store_for("apps", kind), slow.store_for("apps", kind))


def test_scale_write_of_a_missing_object_is_not_found() -> None:
    cluster = _generated(objects=50)
    with pytest.raises(ObjectNotFoundError):
        cluster.update_scale("apps", "Deployment", "default", "nope", _scale_edit)


@pytest.mark.parametrize(
    ("middle", "expected"),
    [
        (b',"spec":{"replicas":3,"template":{}}', (3, 21)),
        (b',"spec":{"replicas":12}', (12, 22)),
        (b',"spec":{"replicas":-1}', None),
        (b',"spec":{"replicas":2.5}', None),
        (b',"spec":{"replicas":"3"}', None),
        (b',"spec":{"paused":true,"replicas":3}', None),
        (b',"other":{"replicas":3}', None),
        (b"", None),
    ],
)
def test_spec_replicas_reads_only_a_leading_integer(
    middle: bytes, expected: tuple[int, int] | None
) -> None:
    assert spec_replicas(middle) == expected
    if expected is not None:
        spliced = with_spec_replicas(middle, expected[1], 105)
        decoded = orjson.loads(b"{" + middle[1:] + b"}")
        decoded["spec"]["replicas"] = 105
        assert spliced == b"," + orjson.dumps(decoded)[1:-1]


# -- cheaper helpers -------------------------------------------------------------------------------
def test_uuid4_text_equals_the_uuid_module() -> None:
    rng = random.Random(3)
    for bits in [0, 2**128 - 1, *(rng.getrandbits(128) for _ in range(2000))]:
        assert uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_encode_rv_equals_base32_of_the_big_endian_counter() -> None:
    rng = random.Random(5)
    for counter in [
        0,
        1,
        31,
        32,
        1023,
        1024,
        2**63,
        2**64 - 1,
        *(rng.getrandbits(64) for _ in range(2000)),
    ]:
        expected = base64.b32encode(counter.to_bytes(8, "big")).decode().rstrip("=").lower()
        assert encode_rv(counter) == "s" + expected


def test_seeded_names_are_the_seeded_random_choices() -> None:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"

    def seeded(source: str, length: int) -> str:
        rng = random.Random(source)
        return "".join(rng.choice(alphabet) for _ in range(length))

    assert template_hash("uid-1/1") == seeded("uid-1/1", 10)
    replica_set = {"metadata": {"name": "web-abc", "uid": "uid-2"}}
    for index in range(3):
        expected = f"web-abc-{seeded(f'uid-2/{index}', 5)}"
        assert replica_pod_name(replica_set, index) == expected


def test_fields_v1_cuts_at_depth_two_and_keys_containers() -> None:
    owned = {
        "metadata": {"labels": {"a": "1"}, "ownerReferences": [{"uid": "u"}]},
        "spec": {"containers": [{"name": "app"}], "template": {"spec": {"x": 1}}, "n": 3},
    }
    assert fields_v1(owned) == {
        "f:metadata": {".": {}, "f:labels": {}, "f:ownerReferences": {}},
        "f:spec": {
            ".": {},
            "f:containers": {'k:{"name":"app"}': {}},
            "f:template": {},
            "f:n": {},
        },
    }
    assert fields_v1([1, 2]) == {}

"""Pure parts of the simulator: resourceVersions, selectors, the generator, cluster state,
LIST semantics and churn accounting. No HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import orjson
import pytest

from simulator import (
    AlreadyExistsError,
    BadRequestError,
    ChurnDriver,
    ChurnMix,
    ClusterState,
    ConflictError,
    ResourceExpiredError,
    Simulator,
    SimulatorConfig,
    decode_rv,
    encode_rv,
)
from simulator.cluster import KindStore
from simulator.generator import SPINNAKER_APP, ClusterGenerator
from simulator.selectors import (
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)


def _cluster(objects: int = 300, history: int = 1000) -> ClusterState:
    sim = Simulator(
        SimulatorConfig(clusters=("c1",), objects_per_cluster=objects, seed=7, history_size=history)
    )
    return sim.cluster("c1")


def _list_all(
    cluster: ClusterState, store: KindStore, limit: int, namespace: str = ""
) -> list[bytes]:
    items: list[bytes] = []
    token = ""
    while True:
        page = cluster.list_page(
            store,
            namespace,
            LabelSelector(),
            parse_field_selector(""),
            limit=limit,
            continue_token=token,
            resource_version="",
            resource_version_match="",
        )
        items.extend(page.items)
        if page.continue_token is None:
            return items
        token = page.continue_token


# -- resource versions ---------------------------------------------------------------------------
def test_resource_versions_are_opaque_not_integers_and_round_trip() -> None:
    for counter in (0, 1, 31, 32, 1000, 2**40 + 3):
        text = encode_rv(counter)
        assert not text.isdigit()
        with pytest.raises(ValueError):
            int(text)
        assert decode_rv(text) == counter


def test_resource_version_garbage_is_bad_request() -> None:
    for text in ("12345", "s", "sAAAAAAAAAAAA!", ""):
        with pytest.raises(BadRequestError):
            decode_rv(text)


# -- selectors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "api"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("tier in (a, b)", {"tier": "b"}, True),
        ("tier in (a,b)", {"tier": "c"}, False),
        ("tier notin (a,b)", {}, True),
        ("tier notin (a,b)", {"tier": "a"}, False),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("!app", {}, True),
        ("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a"}, True),
        ("app=web,tier in (a,b),!canary", {"app": "web", "tier": "a", "canary": "1"}, False),
        ("example.com/team=x", {"example.com/team": "x"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector_semantics(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_label_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("selector", ["app=(", "in (a)", "a b c", "app=web,", "tier in (a"])
def test_label_selector_rejects_garbage(selector: str) -> None:
    with pytest.raises(BadRequestError):
        parse_label_selector(selector)


def test_field_selector_supports_name_and_namespace_only() -> None:
    selector = parse_field_selector("metadata.namespace=ns1,metadata.name!=x")
    assert selector.matches("ns1", "y")
    assert not selector.matches("ns1", "x")
    assert not selector.matches("ns2", "y")
    with pytest.raises(BadRequestError):
        parse_field_selector("status.phase=Running")


# -- generator -------------------------------------------------------------------------------------
def test_generator_is_deterministic_and_exact_in_count() -> None:
    first = [orjson.dumps(o) for o in ClusterGenerator("c1", 3, 500, True).objects()]
    second = [orjson.dumps(o) for o in ClusterGenerator("c1", 3, 500, True).objects()]
    other = [orjson.dumps(o) for o in ClusterGenerator("c2", 3, 500, True).objects()]
    assert first == second
    assert first != other
    assert len(first) == 500


def test_generated_objects_look_real() -> None:
    objects = list(ClusterGenerator("c1", 1, 3000, True).objects())
    kinds = {o["kind"] for o in objects}
    assert {
        "Namespace",
        "Node",
        "Pod",
        "Service",
        "ConfigMap",
        "Secret",
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "Ingress",
        "CustomResourceDefinition",
        "Widget",
    } <= kinds
    by_uid = {o["metadata"]["uid"]: o for o in objects}
    assert len(by_uid) == len(objects)  # uids are unique
    pods = [o for o in objects if o["kind"] == "Pod"]
    rs_pods = [p for p in pods if p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"]
    assert rs_pods
    for pod in rs_pods:
        owner = by_uid[pod["metadata"]["ownerReferences"][0]["uid"]]
        assert owner["kind"] == "ReplicaSet"
        assert by_uid[owner["metadata"]["ownerReferences"][0]["uid"]]["kind"] == "Deployment"
    for pod in pods:
        assert pod["metadata"]["managedFields"]
        assert "@sha256:" in pod["spec"]["containers"][0]["image"]
        assert pod["status"]["podIP"].startswith("10.244.")
        assert isinstance(pod["status"]["containerStatuses"][0]["ready"], bool)
    sizes = sorted(len(orjson.dumps(p)) for p in pods)
    assert 1500 <= sizes[len(sizes) // 2] <= 4500
    assert any(SPINNAKER_APP in o["metadata"].get("annotations", {}) for o in objects)
    secrets = [o for o in objects if o["kind"] == "Secret"]
    assert secrets and all("stringData" not in s and s["data"] for s in secrets)


# -- cluster state ---------------------------------------------------------------------------------
def test_create_update_delete_get_objects() -> None:
    cluster = ClusterState("c", history_size=100, list_snapshots=4, rng=random.Random(1))
    cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    created = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "ns"},
            "data": {"a": "1"},
        }
    )
    assert created["metadata"]["uid"] and created["metadata"]["creationTimestamp"]
    first_rv = created["metadata"]["resourceVersion"]
    with pytest.raises(AlreadyExistsError):
        cluster.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "ns"}}
        )
    created["data"]["a"] = "2"
    updated = cluster.update(created)
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    assert decode_rv(updated["metadata"]["resourceVersion"]) > decode_rv(first_rv)
    with pytest.raises(ConflictError):
        cluster.update(created)  # still carries the old resourceVersion
    assert cluster.get("", "ConfigMap", "ns", "cm") == updated
    assert {o["kind"] for o in cluster.objects()} == {"Namespace", "ConfigMap"}
    cluster.delete("", "ConfigMap", "ns", "cm")
    assert cluster.get("", "ConfigMap", "ns", "cm") is None


def test_secret_string_data_is_folded_into_base64_data() -> None:
    cluster = ClusterState("c", history_size=100, list_snapshots=4, rng=random.Random(1))
    secret = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "stringData": {"pw": "hunter2"},
        }
    )
    assert secret["data"] == {"pw": "aHVudGVyMg=="}
    assert "stringData" not in secret
    assert secret["type"] == "Opaque"


def test_paginated_list_is_a_stable_snapshot() -> None:
    cluster = _cluster(objects=600)
    store = cluster.store_for("", "Pod")
    before = {orjson.loads(b)["metadata"]["uid"] for b in _list_all(cluster, store, limit=1000)}
    first = cluster.list_page(
        store,
        "",
        LabelSelector(),
        parse_field_selector(""),
        limit=10,
        continue_token="",
        resource_version="",
        resource_version_match="",
    )
    assert first.continue_token is not None and first.remaining == len(before) - 10
    # Change the cluster between pages: the pages must still show the first page's state.
    victim = orjson.loads(store.records[store.keys[0]][0])["metadata"]
    cluster.delete("", "Pod", victim["namespace"], victim["name"])
    seen = [orjson.loads(b)["metadata"]["uid"] for b in first.items]
    token = first.continue_token
    while token:
        page = cluster.list_page(
            store,
            "",
            LabelSelector(),
            parse_field_selector(""),
            limit=10,
            continue_token=token,
            resource_version="",
            resource_version_match="",
        )
        assert page.rv == first.rv
        seen.extend(orjson.loads(b)["metadata"]["uid"] for b in page.items)
        token = page.continue_token or ""
    assert len(seen) == len(set(seen)) == len(before)
    assert set(seen) == before


def test_continue_token_expires_with_history() -> None:
    cluster = _cluster()
    store = cluster.store_for("", "Pod")
    first = cluster.list_page(
        store,
        "",
        LabelSelector(),
        parse_field_selector(""),
        limit=5,
        continue_token="",
        resource_version="",
        resource_version_match="",
    )
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump"}})
    cluster.expire_history()
    with pytest.raises(ResourceExpiredError):
        cluster.list_page(
            store,
            "",
            LabelSelector(),
            parse_field_selector(""),
            limit=5,
            continue_token=first.continue_token or "",
            resource_version="",
            resource_version_match="",
        )


def test_exact_list_rebuilds_an_older_state_and_410s_past_history() -> None:
    cluster = _cluster(history=50)
    store = cluster.store_for("", "ConfigMap")
    old_rv = cluster.current_resource_version()
    old_names = {orjson.loads(b)["metadata"]["name"] for b in _list_all(cluster, store, 10_000)}
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new-one"}})

    def names_at(rv: str) -> set[str]:
        page = cluster.list_page(
            store,
            "",
            LabelSelector(),
            parse_field_selector(""),
            limit=0,
            continue_token="",
            resource_version=rv,
            resource_version_match="Exact",
        )
        return {orjson.loads(b)["metadata"]["name"] for b in page.items}

    assert names_at(old_rv) == old_names
    assert "new-one" in names_at(cluster.current_resource_version())
    for i in range(60):  # push the create out of the 50-event window
        cluster.create(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"filler-{i}"}}
        )
    with pytest.raises(ResourceExpiredError):
        names_at(old_rv)


def test_namespace_list_uses_only_that_namespace() -> None:
    cluster = _cluster(objects=800)
    store = cluster.store_for("", "Pod")
    all_pods = [orjson.loads(b) for b in _list_all(cluster, store, 10_000)]
    namespace = all_pods[-1]["metadata"]["namespace"]
    scoped = [orjson.loads(b) for b in _list_all(cluster, store, 7, namespace=namespace)]
    assert scoped
    assert {p["metadata"]["namespace"] for p in scoped} == {namespace}
    assert len(scoped) == sum(1 for p in all_pods if p["metadata"]["namespace"] == namespace)


def test_crd_create_registers_kind_and_removal_drops_objects() -> None:
    cluster = ClusterState("c", history_size=100, list_snapshots=4, rng=random.Random(1))
    cluster.add_crd(group="acme.io", version="v2", kind="Gadget", plural="gadgets", scope="Cluster")
    cluster.create(
        {"apiVersion": "acme.io/v2", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"x": 1}}
    )
    assert cluster.get("acme.io", "Gadget", "", "g1") is not None
    cluster.remove_crd("acme.io", "Gadget")
    assert cluster.get("acme.io", "Gadget", "", "g1") is None
    assert all(spec.kind != "Gadget" for spec in cluster.kind_specs())


# -- churn accounting ------------------------------------------------------------------------------
def test_churn_step_makes_the_requested_number_of_changes() -> None:
    sim = Simulator(SimulatorConfig(clusters=("a", "b"), objects_per_cluster=400, seed=3))
    clusters = list(sim.clusters.values())
    events_before = sum(c.counters.events for c in clusters)
    driver = ChurnDriver(clusters, rate_per_s=500.0, mix=ChurnMix(), rng=random.Random(5))
    made = sum(driver.step(0.1) for _ in range(10))  # one simulated second
    events = sum(c.counters.events for c in clusters) - events_before
    assert made == events == driver.changes
    # A scale can overshoot the budget by a few changes; the carried debt evens it out.
    assert 490 <= made <= 510
    assert set(driver.operations) == {"create", "update_pod_status", "scale_deployment", "delete"}


def test_churn_only_status_updates_keeps_object_count() -> None:
    sim = Simulator(SimulatorConfig(clusters=("a",), objects_per_cluster=300, seed=3))
    cluster = sim.cluster("a")
    count = cluster.count()
    mix = ChurnMix(creates=0, pod_status_updates=1, deployment_scales=0, deletes=0)
    driver = ChurnDriver([cluster], rate_per_s=100.0, mix=mix, rng=random.Random(1))
    assert driver.step(1.0) == 100
    assert cluster.count() == count


def test_a_sliced_step_stops_in_time_and_keeps_the_rest_of_the_budget() -> None:
    sim = Simulator(SimulatorConfig(clusters=("a",), objects_per_cluster=300, seed=3))
    mix = ChurnMix(creates=0, pod_status_updates=1, deployment_scales=0, deletes=0)
    driver = ChurnDriver([sim.cluster("a")], rate_per_s=1e6, mix=mix, rng=random.Random(1))
    began = time.perf_counter()
    made = driver.step(1.0, slice_s=0.002)  # a million changes due, 2 ms to make them
    took = time.perf_counter() - began

    assert 16 <= made < 100_000
    assert took < 0.5
    assert driver.budget == pytest.approx(1e6 - made)  # the rest waits for the next step
    assert driver.step(0.0, slice_s=0.002) > 0


async def test_churn_behind_its_rate_keeps_the_event_loop_answering() -> None:
    # Far more changes than the machine can make: each step has a whole second's
    # budget (max_burst_s). Unsliced, one step would hold the loop for seconds.
    sim = Simulator(SimulatorConfig(clusters=("a",), objects_per_cluster=300, seed=3))
    mix = ChurnMix(creates=0, pod_status_updates=1, deployment_scales=0, deletes=0)
    driver = ChurnDriver([sim.cluster("a")], rate_per_s=1e6, mix=mix, rng=random.Random(1))
    churn = asyncio.create_task(driver.run(tick_s=0.005, slice_s=0.005))
    gaps = []
    try:
        last = time.perf_counter()
        for _ in range(100):
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
    finally:
        churn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await churn

    assert driver.changes > 100  # it churned all along
    assert max(gaps) < 0.1  # and the loop kept turning: slices of 5 ms, not a 1 s step


def test_random_identity_and_exists_name_live_objects_without_decoding() -> None:
    cluster = Simulator(SimulatorConfig(clusters=("m",), objects_per_cluster=50, seed=4)).cluster(
        "m"
    )
    rng = random.Random(1)
    for group, kind in (("", "Pod"), ("", "Node"), ("", "Namespace")):
        namespace, name = cluster.random_identity(group, kind, rng) or ("?", "?")
        obj = cluster.get(group, kind, namespace, name)
        assert obj is not None and obj["metadata"]["name"] == name
        assert obj["metadata"].get("namespace", "") == namespace
        assert cluster.exists(group, kind, namespace, name)
        cluster.delete(group, kind, namespace, name)
        assert not cluster.exists(group, kind, namespace, name)
    assert cluster.random_identity("nope.example.com", "Thing", rng) is None
    assert not cluster.exists("nope.example.com", "Thing", "", "x")

"""The simulator over real HTTP, driven by kubernetes-asyncio exactly as producers use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aiohttp
import orjson
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.watch import Watch

from simulator import Simulator, SimulatorConfig, decode_rv
from simulator.cluster import ClusterState

Obj = dict[str, Any]


class Env:
    def __init__(self, sim: Simulator, base_url: str, api: client.ApiClient) -> None:
        self.sim = sim
        self.base_url = base_url
        self.api = api
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    @property
    def c1(self) -> ClusterState:
        return self.sim.cluster("c1")


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    config = SimulatorConfig(
        clusters=("c1", "c2"),
        objects_per_cluster=300,
        seed=11,
        bookmark_interval_s=0.2,
        history_size=200,
    )
    sim = Simulator(config)
    async with sim.serve() as base_url:
        configuration = client.Configuration(host=f"{base_url}/clusters/c1")
        async with client.ApiClient(configuration) as api:
            yield Env(sim, base_url, api)


async def _json(response: Any) -> Obj:
    data = orjson.loads(await response.read())
    assert isinstance(data, dict)
    return data


async def _list_all(
    call: Callable[..., Awaitable[Any]], limit: int, **kwargs: Any
) -> tuple[list[Obj], list[Obj]]:
    """Every item of a paginated LIST, and each page's metadata."""
    items: list[Obj] = []
    metas: list[Obj] = []
    token = None
    while True:
        page = await _json(
            await call(limit=limit, _continue=token, _preload_content=False, **kwargs)
        )
        items.extend(page["items"])
        metas.append(page["metadata"])
        token = page["metadata"].get("continue")
        if not token:
            return items, metas


def _body(error: ApiException) -> Obj:
    assert error.body is not None
    data = orjson.loads(error.body)
    assert isinstance(data, dict)
    return data


async def _raw(call: Awaitable[Any]) -> aiohttp.ClientResponse:
    """The aiohttp response of a ``_preload_content=False`` call (the stubs say model)."""
    return cast(aiohttp.ClientResponse, await call)


async def _events(stream: Watch, count: int) -> list[Obj]:
    out: list[Obj] = []
    async for event in stream:
        out.append(event)
        if len(out) == count:
            break
    return out


async def _post(env: Env, path: str) -> Obj:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{env.base_url}{path}") as response,
    ):
        assert response.status in (200, 201), await response.text()
        data = orjson.loads(await response.read())
        assert isinstance(data, dict)
        return data


# -- discovery ---------------------------------------------------------------------------------------
async def test_discovery_lists_kinds_subresources_and_the_crd(env: Env) -> None:
    core = await _json(await env.core.get_api_resources(_preload_content=False))
    names = {r["name"]: r for r in core["resources"]}
    assert names["pods"]["namespaced"] and "watch" in names["pods"]["verbs"]
    assert not names["namespaces"]["namespaced"] and not names["nodes"]["namespaced"]
    assert "pods/status" in names and "list" not in names["pods/status"]["verbs"]
    assert names["bindings"]["verbs"] == ["create"]
    groups = await _json(await client.ApisApi(env.api).get_api_versions(_preload_content=False))
    group_names = {g["name"]: g for g in groups["groups"]}
    assert {"apps", "batch", "networking.k8s.io", "apiextensions.k8s.io", "example.com"} <= set(
        group_names
    )
    assert group_names["example.com"]["preferredVersion"]["groupVersion"] == "example.com/v1"
    apps = await _json(await client.AppsV1Api(env.api).get_api_resources(_preload_content=False))
    assert {"deployments", "replicasets", "statefulsets", "daemonsets", "deployments/scale"} <= {
        r["name"] for r in apps["resources"]
    }
    version = await client.VersionApi(env.api).get_code()
    assert version.major == "1"


# -- LIST --------------------------------------------------------------------------------------------
async def test_paginated_list_returns_every_object_exactly_once(env: Env) -> None:
    items, metas = await _list_all(env.core.list_pod_for_all_namespaces, limit=17)
    uids = [i["metadata"]["uid"] for i in items]
    expected = {o["metadata"]["uid"] for o in env.c1.objects() if o["kind"] == "Pod"}
    assert len(uids) == len(set(uids)) == len(expected)
    assert set(uids) == expected
    assert len(metas) > 2
    assert len({m["resourceVersion"] for m in metas}) == 1  # one snapshot
    assert metas[0]["remainingItemCount"] == len(expected) - 17
    assert all(
        "kind" not in i and "apiVersion" not in i for i in items
    )  # typed list items, like real


async def test_list_of_custom_objects_carries_kind_and_api_version(env: Env) -> None:
    data = await _json(
        await env.custom.list_cluster_custom_object(
            "example.com", "v1", "widgets", _preload_content=False
        )
    )
    assert data["kind"] == "WidgetList" and data["items"]
    assert all(i["kind"] == "Widget" and i["apiVersion"] == "example.com/v1" for i in data["items"])


async def test_list_resource_version_semantics(env: Env) -> None:
    first = await _json(await env.core.list_config_map_for_all_namespaces(_preload_content=False))
    rv = first["metadata"]["resourceVersion"]
    env.c1.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "added-later", "namespace": "default"},
        }
    )
    exact = await _json(
        await env.core.list_config_map_for_all_namespaces(
            resource_version=rv, resource_version_match="Exact", _preload_content=False
        )
    )
    assert exact["metadata"]["resourceVersion"] == rv
    assert len(exact["items"]) == len(first["items"])
    newer = await _json(
        await env.core.list_config_map_for_all_namespaces(
            resource_version=rv, resource_version_match="NotOlderThan", _preload_content=False
        )
    )
    assert len(newer["items"]) == len(first["items"]) + 1
    # rv=0 is served from the "watch cache": the limit is ignored, as on the real server.
    cached = await _json(
        await env.core.list_config_map_for_all_namespaces(
            resource_version="0", limit=2, _preload_content=False
        )
    )
    assert len(cached["items"]) == len(first["items"]) + 1 and "continue" not in cached["metadata"]
    env.c1.expire_history()
    with pytest.raises(ApiException) as info:
        await env.core.list_config_map_for_all_namespaces(
            resource_version=rv, resource_version_match="Exact"
        )
    assert info.value.status == 410
    assert _body(info.value)["reason"] == "Expired"


async def test_expired_continue_token_is_410(env: Env) -> None:
    page = await _json(await env.core.list_pod_for_all_namespaces(limit=5, _preload_content=False))
    env.c1.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "bump", "namespace": "default"},
        }
    )
    await _post(env, "/_sim/clusters/c1/expire-history")
    with pytest.raises(ApiException) as info:
        await env.core.list_pod_for_all_namespaces(limit=5, _continue=page["metadata"]["continue"])
    assert info.value.status == 410
    status = _body(info.value)
    assert status["kind"] == "Status" and status["reason"] == "Expired" and status["code"] == 410


async def test_label_and_field_selectors_and_namespaced_list(env: Env) -> None:
    pods = [o for o in env.c1.objects() if o["kind"] == "Pod"]
    app = pods[-1]["metadata"]["labels"].get("app") or pods[-1]["metadata"]["labels"]["k8s-app"]
    key = "app" if "app" in pods[-1]["metadata"]["labels"] else "k8s-app"
    selected = await _json(
        await env.core.list_pod_for_all_namespaces(
            label_selector=f"{key}={app}", _preload_content=False
        )
    )
    expected = {p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get(key) == app}
    assert {p["metadata"]["name"] for p in selected["items"]} == expected
    negated = await _json(
        await env.core.list_pod_for_all_namespaces(
            label_selector=f"{key} notin ({app}),{key}", _preload_content=False
        )
    )
    assert len(negated["items"]) == sum(1 for p in pods if key in p["metadata"]["labels"]) - len(
        expected
    )
    namespace = pods[-1]["metadata"]["namespace"]
    scoped = await _json(await env.core.list_namespaced_pod(namespace, _preload_content=False))
    assert {p["metadata"]["namespace"] for p in scoped["items"]} == {namespace}
    by_name = await _json(
        await env.core.list_pod_for_all_namespaces(
            field_selector=f"metadata.name={pods[-1]['metadata']['name']}", _preload_content=False
        )
    )
    assert [p["metadata"]["uid"] for p in by_name["items"]] == [pods[-1]["metadata"]["uid"]]
    with pytest.raises(ApiException) as info:
        await env.core.list_pod_for_all_namespaces(label_selector="app in (x")
    assert info.value.status == 400


async def test_get_secret_and_not_found_status(env: Env) -> None:
    created = env.c1.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"},
            "stringData": {"k": "v"},
        }
    )
    secret = await _json(
        await env.core.read_namespaced_secret("s", "default", _preload_content=False)
    )
    assert (
        secret["kind"] == "Secret"
        and secret["data"] == {"k": "dg=="}
        and "stringData" not in secret
    )
    assert secret["metadata"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(ApiException) as info:
        await env.core.read_namespaced_secret("missing", "default")
    status = _body(info.value)
    assert (
        info.value.status == 404 and status["reason"] == "NotFound" and status["kind"] == "Status"
    )
    with pytest.raises(ApiException) as unknown:
        await env.custom.list_cluster_custom_object("nope.io", "v1", "things")
    assert unknown.value.status == 404


# -- WATCH -------------------------------------------------------------------------------------------
async def test_watch_delivers_changes_in_order_with_bookmarks(env: Env) -> None:
    listed = await _json(
        await env.core.list_namespaced_config_map("default", _preload_content=False)
    )
    rv = listed["metadata"]["resourceVersion"]

    async def change() -> None:
        await asyncio.sleep(0.05)
        made = env.c1.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "w", "namespace": "default"},
            }
        )
        made["data"] = {"x": "1"}
        env.c1.update(made)
        env.c1.delete("", "ConfigMap", "default", "w")

    task = asyncio.create_task(change())
    stream = Watch().stream(
        env.core.list_namespaced_config_map,
        "default",
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=5,
    )
    events: list[Obj] = []
    async for event in stream:
        events.append(event)
        if event["type"] == "BOOKMARK" and len(events) >= 4:
            break
    await stream.close()
    await task
    changes = [e for e in events if e["type"] != "BOOKMARK"]
    assert [e["type"] for e in changes] == ["ADDED", "MODIFIED", "DELETED"]
    assert all(e["raw_object"]["metadata"]["name"] == "w" for e in changes)
    assert changes[0]["raw_object"]["kind"] == "ConfigMap"
    rvs = [decode_rv(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and len(set(rvs[:3])) == 3
    bookmark = events[-1]["raw_object"]
    assert set(bookmark) == {"kind", "apiVersion", "metadata"}
    assert decode_rv(bookmark["metadata"]["resourceVersion"]) >= rvs[2]


async def test_resume_from_resource_version_yields_exactly_the_missed_events(env: Env) -> None:
    start = env.c1.current_resource_version()
    for i in range(5):
        env.c1.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"m{i}", "namespace": "default"},
            }
        )
        env.c1.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"other-{i}"}}
        )  # other kind
    middle = env.c1.get("", "ConfigMap", "default", "m1")
    assert middle is not None
    stream = Watch().stream(
        env.core.list_config_map_for_all_namespaces,
        resource_version=middle["metadata"]["resourceVersion"],
        timeout_seconds=1,
    )
    names = [e["raw_object"]["metadata"]["name"] async for e in stream]
    assert names == ["m2", "m3", "m4"]
    stream = Watch().stream(
        env.core.list_config_map_for_all_namespaces, resource_version=start, timeout_seconds=1
    )
    assert [e["raw_object"]["metadata"]["name"] async for e in stream] == [
        f"m{i}" for i in range(5)
    ]


async def test_watch_with_label_selector_turns_relabels_into_added_and_deleted(env: Env) -> None:
    rv = env.c1.current_resource_version()
    made = env.c1.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "sel", "namespace": "default", "labels": {"t": "no"}},
        }
    )
    made["metadata"]["labels"]["t"] = "yes"
    made = env.c1.update(made)
    made["data"] = {"a": "b"}
    made = env.c1.update(made)
    made["metadata"]["labels"]["t"] = "no"
    env.c1.update(made)
    stream = Watch().stream(
        env.core.list_namespaced_config_map,
        "default",
        resource_version=rv,
        label_selector="t=yes",
        timeout_seconds=1,
    )
    assert [e["type"] async for e in stream] == ["ADDED", "MODIFIED", "DELETED"]


async def test_watch_without_resource_version_sends_initial_state_then_initial_events_end(
    env: Env,
) -> None:
    count = sum(1 for o in env.c1.objects() if o["kind"] == "Namespace")
    stream = Watch().stream(
        env.core.list_namespace,
        allow_watch_bookmarks=True,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        resource_version="",
        timeout_seconds=2,
    )
    events = await _events(stream, count + 1)
    await stream.close()
    assert [e["type"] for e in events[:count]] == ["ADDED"] * count
    assert events[count]["type"] == "BOOKMARK"
    assert events[count]["raw_object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"
    }


async def test_resuming_from_expired_history_gets_error_410_event(env: Env) -> None:
    rv = env.c1.current_resource_version()
    env.c1.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}}
    )
    env.c1.expire_history()
    raw = await _raw(
        env.core.list_config_map_for_all_namespaces(
            watch=True, resource_version=rv, _preload_content=False
        )
    )
    assert raw.status == 200
    lines = [line async for line in raw.content if line.strip()]
    assert len(lines) == 1
    event = orjson.loads(lines[0])
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status" and event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"
    # kubernetes-asyncio's Watch turns that event into ApiException(410).
    with pytest.raises(ApiException) as info:
        async for _ in Watch().stream(
            env.core.list_config_map_for_all_namespaces, resource_version=rv, timeout_seconds=2
        ):
            pass
    assert info.value.status == 410


async def test_history_window_overflow_expires_old_resource_versions(env: Env) -> None:
    rv = env.c1.current_resource_version()
    for i in range(250):  # history_size is 200 events per cluster
        env.c1.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"f{i}", "namespace": "default"},
            }
        )
    with pytest.raises(ApiException) as info:
        async for _ in Watch().stream(
            env.core.list_config_map_for_all_namespaces, resource_version=rv, timeout_seconds=2
        ):
            pass
    assert info.value.status == 410


async def test_force_410_ends_open_watches_with_an_error_event(env: Env) -> None:
    raw = await _raw(
        env.core.list_pod_for_all_namespaces(
            watch=True, resource_version=env.c1.current_resource_version(), _preload_content=False
        )
    )
    await asyncio.sleep(0.05)
    reply = await _post(env, "/_sim/clusters/c1/force-410")
    assert reply["watches"] == 1
    lines = [line async for line in raw.content if line.strip()]
    assert orjson.loads(lines[-1])["object"]["code"] == 410


async def test_drop_connections_cuts_the_stream(env: Env) -> None:
    raw = await _raw(
        env.core.list_pod_for_all_namespaces(
            watch=True, resource_version=env.c1.current_resource_version(), _preload_content=False
        )
    )
    await asyncio.sleep(0.05)
    assert env.c1.drop_connections() == 1
    with pytest.raises(aiohttp.ClientPayloadError):
        async for _ in raw.content:
            pass


async def test_watch_timeout_seconds_ends_the_stream_cleanly(env: Env) -> None:
    raw = await _raw(
        env.core.list_pod_for_all_namespaces(
            watch=True,
            resource_version=env.c1.current_resource_version(),
            timeout_seconds=1,
            _preload_content=False,
        )
    )
    lines = [line async for line in raw.content if line.strip()]
    assert lines == []


# -- faults ------------------------------------------------------------------------------------------
async def test_throttle_answers_429_with_retry_after(env: Env) -> None:
    await _post(env, "/_sim/clusters/c1/throttle?n=2")
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            await env.core.list_namespace()
        assert info.value.status == 429
        assert info.value.headers is not None and info.value.headers["Retry-After"] == "1"
        assert _body(info.value)["reason"] == "TooManyRequests"
    assert (await env.core.list_namespace()).items


async def test_fail_answers_5xx_then_recovers_and_other_clusters_are_unaffected(env: Env) -> None:
    env.c1.fail(1, status=500)
    env.sim.cluster("c2").fail(3)
    with pytest.raises(ApiException) as info:
        await env.core.list_namespace()
    assert info.value.status == 500
    assert (await env.core.list_namespace()).items
    assert env.sim.cluster("c2").faults.fail_left == 3


async def test_latency_knob_delays_responses(env: Env) -> None:
    await _post(env, "/_sim/clusters/c1/latency?ms=30")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await env.core.list_namespace(_preload_content=False)
    assert env.c1.faults.latency_ms == 30
    assert loop.time() - started >= 0.03


# -- CRDs at run time ----------------------------------------------------------------------------------
async def test_crd_created_at_run_time_is_discoverable_listable_watchable(env: Env) -> None:
    ext = client.ApiextensionsV1Api(env.api)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.acme.io"},
        "spec": {
            "group": "acme.io",
            "names": {
                "kind": "Gizmo",
                "plural": "gizmos",
                "singular": "gizmo",
                "listKind": "GizmoList",
            },
            "scope": "Namespaced",
            "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
        },
    }
    await ext.create_custom_resource_definition(cast(Any, crd), _preload_content=False)
    resources = await _json(
        await env.custom.get_api_resources("acme.io", "v1alpha1", _preload_content=False)
    )
    assert [r["name"] for r in resources["resources"]] == ["gizmos"]
    listed = await _json(
        await env.custom.list_cluster_custom_object(
            "acme.io", "v1alpha1", "gizmos", _preload_content=False
        )
    )
    assert listed["items"] == []
    rv = listed["metadata"]["resourceVersion"]
    env.c1.create(
        {
            "apiVersion": "acme.io/v1alpha1",
            "kind": "Gizmo",
            "metadata": {"name": "g", "namespace": "default"},
        }
    )
    stream = Watch().stream(
        env.custom.list_cluster_custom_object,
        "acme.io",
        "v1alpha1",
        "gizmos",
        resource_version=rv,
        timeout_seconds=5,
    )
    first = await _events(stream, 1)
    assert first[0]["type"] == "ADDED" and first[0]["raw_object"]["kind"] == "Gizmo"
    # Removing the CRD ends the open watch and the kind leaves discovery.
    env.c1.remove_crd("acme.io", "Gizmo")
    assert [e async for e in stream] == []
    with pytest.raises(ApiException) as info:
        await env.custom.get_api_resources("acme.io", "v1alpha1")
    assert info.value.status == 404


# -- control and churn --------------------------------------------------------------------------------
async def test_churn_over_http_produces_events_and_stats(env: Env) -> None:
    started = await _post(env, "/_sim/churn/start?rate=400")
    assert started["ok"]
    stream = Watch().stream(
        env.core.list_pod_for_all_namespaces,
        resource_version=env.c1.current_resource_version(),
        timeout_seconds=10,
    )
    events = await _events(stream, 5)
    await stream.close()
    assert {e["type"] for e in events} <= {"ADDED", "MODIFIED", "DELETED"}
    await _post(env, "/_sim/churn/stop")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{env.base_url}/_sim/stats?per_cluster=1") as response,
    ):
        stats = orjson.loads(await response.read())
    assert stats["churn"]["changes"] > 0 and not stats["churn"]["running"]
    assert stats["events"] >= stats["churn"]["changes"]
    assert set(stats["per_cluster"]) == {"c1", "c2"}


async def test_required_token_is_enforced() -> None:
    sim = Simulator(
        SimulatorConfig(clusters=("c1",), objects_per_cluster=20, required_token="s3cret")
    )
    async with sim.serve() as base_url:
        anonymous = client.Configuration(host=f"{base_url}/clusters/c1")
        async with client.ApiClient(anonymous) as api:
            with pytest.raises(ApiException) as info:
                await client.CoreV1Api(api).list_namespace()
            assert info.value.status == 401
        authorized = client.Configuration(
            host=f"{base_url}/clusters/c1", api_key={"BearerToken": "s3cret"}
        )
        authorized.api_key_prefix = {"BearerToken": "Bearer"}
        async with client.ApiClient(authorized) as api:
            assert (await client.CoreV1Api(api).list_namespace()).items


async def test_aggregated_discovery_only_when_asked_and_enabled(env: Env) -> None:
    v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    async with aiohttp.ClientSession() as http:
        base = f"{env.base_url}/clusters/c1"
        async with http.get(f"{base}/apis", headers={"Accept": v2}) as r:
            assert r.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io")
            doc = orjson.loads(await r.read())
        assert doc["kind"] == "APIGroupDiscoveryList"
        groups = {item["metadata"]["name"] for item in doc["items"]}
        assert {"apps", "example.com"} <= groups and "" not in groups
        apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
        deployments = next(
            r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"
        )
        assert deployments["scope"] == "Namespaced"
        assert deployments["responseKind"]["kind"] == "Deployment"
        assert "scale" in {s["subresource"] for s in deployments["subresources"]}
        async with http.get(f"{base}/api", headers={"Accept": v2}) as r:
            core = orjson.loads(await r.read())
        assert [i["metadata"]["name"] for i in core["items"]] == [""]
        async with http.get(f"{base}/apis") as r:  # no Accept: legacy
            assert orjson.loads(await r.read())["kind"] == "APIGroupList"


async def test_root_cluster_is_also_served_at_the_api_server_root() -> None:
    sim = Simulator(SimulatorConfig(clusters=("a", "b"), objects_per_cluster=10, root_cluster="b"))
    async with sim.serve() as base, aiohttp.ClientSession() as http:

        async def names(url: str) -> set[str]:
            async with http.get(url) as response:
                assert response.status == 200
                return {i["metadata"]["name"] for i in (await response.json())["items"]}

        assert await names(f"{base}/api/v1/pods") == await names(f"{base}/clusters/b/api/v1/pods")
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 404  # only a real API server's own paths


def test_root_cluster_must_be_one_of_the_simulated_clusters() -> None:
    with pytest.raises(ValueError, match="root_cluster 'z'"):
        SimulatorConfig(clusters=("a",), root_cluster="z")

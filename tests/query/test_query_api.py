"""The HTTP API in-process (ASGI) over a real RocksDB store read as a secondary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import pytest
from query_support import (
    ADMIN,
    NODES,
    TEAM_A,
    StoreWriter,
    auth,
    k8s_object,
    open_service,
    sample_objects,
)

from deltas import Op
from query.app import create_asgi
from query.auth import Scope
from query.feed import FeedFilter, FeedHub
from query.selectors import parse_selector
from query.service import QueryService
from store.reads import ViewReads
from store.values import Change

POD = "/api/v1/clusters/{c}/objects/core/v1/Pod/{ns}/{name}"


def _writer(root: Path) -> StoreWriter:
    w = StoreWriter(root / "store")
    for cluster, objs in sample_objects().items():
        w.write(cluster, objs)
    return w


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StoreWriter, QueryService]]:
    """One store for the tests that only read (opening RocksDB twice costs ~0.3 s)."""
    root = tmp_path_factory.mktemp("query-api")
    w = _writer(root)
    svc = open_service(w.path, root / "secondary")
    yield w, svc
    svc.close()
    w.close()


@pytest.fixture
def writer(shared: tuple[StoreWriter, QueryService]) -> StoreWriter:
    return shared[0]


@pytest.fixture
def service(shared: tuple[StoreWriter, QueryService]) -> QueryService:
    return shared[1]


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[tuple[StoreWriter, QueryService]]:
    """A store of its own, for tests that write."""
    w = _writer(tmp_path)
    svc = open_service(w.path, tmp_path / "secondary")
    yield w, svc
    svc.close()
    w.close()


async def _client(service: QueryService) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_asgi(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def client(service: QueryService) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(service):
        yield c


@pytest.fixture
async def fresh_client(
    fresh: tuple[StoreWriter, QueryService],
) -> AsyncIterator[tuple[httpx.AsyncClient, StoreWriter, QueryService]]:
    async for c in _client(fresh[1]):
        yield c, fresh[0], fresh[1]


def items(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    out: list[dict[str, Any]] = response.json()["items"]
    return out


def names(response: httpx.Response) -> list[tuple[str, str, str]]:
    return [
        (
            i["cluster"],
            i["object"]["metadata"].get("namespace", ""),
            i["object"]["metadata"]["name"],
        )
        for i in items(response)
    ]


async def test_get_returns_stored_bytes(client: httpx.AsyncClient, service: QueryService) -> None:
    r = await client.get(POD.format(c="c1", ns="team-a", name="web-5d4f-0"), headers=auth(ADMIN))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.content == service.reader.get("c1", "", "Pod", "team-a", "web-5d4f-0")
    node = await client.get(
        "/api/v1/clusters/c2/objects/core/v1/Node/_/c2-node-1", headers=auth(ADMIN)
    )
    assert node.json()["metadata"]["name"] == "c2-node-1"


async def test_missing_and_out_of_scope_look_the_same(client: httpx.AsyncClient) -> None:
    hidden = await client.get(
        POD.format(c="c1", ns="team-b", name="web-5d4f-0"), headers=auth(TEAM_A)
    )
    absent = await client.get(POD.format(c="c1", ns="team-a", name="nope"), headers=auth(TEAM_A))
    other_cluster = await client.get(
        POD.format(c="c2", ns="team-a", name="web-5d4f-0"), headers=auth(TEAM_A)
    )
    assert hidden.status_code == absent.status_code == other_cluster.status_code == 404
    assert hidden.content == absent.content == other_cluster.content
    visible = await client.get(
        POD.format(c="c1", ns="team-a", name="web-5d4f-0"), headers=auth(TEAM_A)
    )
    assert visible.status_code == 200


@pytest.mark.parametrize(
    "header", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic x"}]
)
async def test_unauthenticated(client: httpx.AsyncClient, header: dict[str, str]) -> None:
    for path in (
        POD.format(c="c1", ns="team-a", name="web-5d4f-0"),
        "/api/v1/objects",
        "/api/v1/watch",
        "/api/v1/clusters",
        "/applications",
    ):
        r = await client.get(path, headers=header)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


async def test_list_one_kind_and_namespace(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/v1/clusters/c1/objects/core/v1/ConfigMap/team-a", headers=auth(ADMIN)
    )
    assert names(r) == [("c1", "team-a", f"cfg-{i}") for i in range(5)]
    r = await client.get(
        "/api/v1/clusters/c1/objects/core/v1/Node", headers=auth(ADMIN), params={"namespace": "_"}
    )
    assert names(r) == [("c1", "", "c1-node-1")]


async def test_list_with_selectors(client: httpx.AsyncClient) -> None:
    async def search(**params: str) -> list[tuple[str, str, str]]:
        return names(await client.get("/api/v1/objects", headers=auth(ADMIN), params=params))

    base = {"cluster": "c1", "kind": "ConfigMap", "namespace": "team-a"}
    assert [n for _, _, n in await search(**base, labelSelector="app=db")] == ["cfg-1", "cfg-3"]
    assert [n for _, _, n in await search(**base, labelSelector="app!=db")] == [
        "cfg-0",
        "cfg-2",
        "cfg-4",
    ]
    assert [n for _, _, n in await search(**base, labelSelector="idx in (1,4),app")] == [
        "cfg-1",
        "cfg-4",
    ]
    assert [n for _, _, n in await search(**base, labelSelector="idx notin (0,1,2)")] == [
        "cfg-3",
        "cfg-4",
    ]
    assert await search(**base, labelSelector="!idx") == []
    assert [n for _, _, n in await search(**base, namePrefix="cfg-2")] == ["cfg-2"]


async def test_cross_cluster_label_search(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/api/v1/objects",
        headers=auth(ADMIN),
        params={"group": "apps", "kind": "Deployment", "labelSelector": "app=web"},
    )
    assert sorted(names(r)) == [
        (c, ns, "web") for c in ("c1", "c2", "c3") for ns in ("team-a", "team-b")
    ]
    scoped = await client.get(
        "/api/v1/objects",
        headers=auth(TEAM_A),
        params={"group": "apps", "kind": "Deployment", "labelSelector": "app=web"},
    )
    assert names(scoped) == [("c1", "team-a", "web")]


@pytest.mark.parametrize("token", [ADMIN, TEAM_A, NODES])
@pytest.mark.parametrize("limit", ["1", "3", "7"])
async def test_pagination_is_complete_and_stable(
    client: httpx.AsyncClient, token: str, limit: str
) -> None:
    def keyed(r: httpx.Response) -> list[tuple[str, str, str]]:
        return [
            (c, ns, f"{i['object']['kind']}/{n}")
            for (c, ns, n), i in zip(names(r), items(r), strict=True)
        ]

    for params in (
        {},
        {"labelSelector": "app in (db,web)"},
        {"labelSelector": "app,idx notin (3)"},
        {"labelSelector": "idx in (1,2,4),app=db"},
        {"kind": "Pod"},
        {"namePrefix": "cfg-", "labelSelector": "!tier"},
    ):
        whole = await client.get("/api/v1/objects", headers=auth(token), params=params)
        full = keyed(whole)
        paged: list[tuple[str, str, str]] = []
        continue_token = None
        for _ in range(200):
            p = {
                **params,
                "limit": limit,
                **({"continue": continue_token} if continue_token else {}),
            }
            r = await client.get("/api/v1/objects", headers=auth(token), params=p)
            page = keyed(r)
            assert len(page) <= int(limit)
            paged += page
            continue_token = r.json()["metadata"].get("continue")
            if not continue_token:
                break
        assert paged == full, params
        assert len(set(paged)) == len(paged)


async def test_counts(client: httpx.AsyncClient) -> None:
    async def count(token: str, **params: str) -> int:
        r = await client.get(
            "/api/v1/objects", headers=auth(token), params={**params, "count": "true"}
        )
        assert r.status_code == 200, r.text
        n: int = r.json()["count"]
        return n

    assert await count(ADMIN) == 3 * (2 * 10 + 1)
    assert await count(ADMIN, kind="Pod") == 12
    assert await count(ADMIN, kind="ConfigMap", labelSelector="app=db") == 12
    assert await count(TEAM_A) == 10
    assert await count(TEAM_A, kind="Pod", namespace="team-b") == 0
    assert await count(NODES) == 3
    assert await count(NODES, kind="Pod") == 0


async def test_scopes_everywhere(client: httpx.AsyncClient) -> None:
    listed = names(await client.get("/api/v1/objects", headers=auth(TEAM_A)))
    assert listed and all(c == "c1" and ns == "team-a" for c, ns, _ in listed)
    nodes = names(await client.get("/api/v1/objects", headers=auth(NODES)))
    assert sorted(nodes) == [(c, "", f"{c}-node-1") for c in ("c1", "c2", "c3")]
    clusters = (await client.get("/api/v1/clusters", headers=auth(TEAM_A))).json()["clusters"]
    assert [c["cluster"] for c in clusters] == ["c1"]
    assert "countsByKind" not in clusters[0]  # counts span namespaces it cannot see
    assert (await client.get("/api/v1/clusters/c2/status", headers=auth(TEAM_A))).status_code == 404
    status = (await client.get("/api/v1/clusters/c2/status", headers=auth(ADMIN))).json()
    assert status["objectCount"] == 21
    groups = (await client.get("/applications/shop/serverGroups", headers=auth(TEAM_A))).json()
    assert [(g["account"], g["namespace"]) for g in groups] == [("c1", "team-a")]
    assert (await client.get("/applications", headers=auth(TEAM_A))).json()[0]["name"] == "shop"
    assert (await client.get("/applications", headers=auth(NODES))).json() == []
    manifest = await client.get("/manifests/c1/team-b/deployment web", headers=auth(TEAM_A))
    assert manifest.status_code == 404


async def test_spinnaker_views(client: httpx.AsyncClient) -> None:
    groups = (await client.get("/applications/shop/serverGroups", headers=auth(ADMIN))).json()
    assert len(groups) == 6
    g = groups[0]
    assert g["name"] == "replicaSet web-5d4f" and g["moniker"]["cluster"] == "deployment web"
    assert [i["healthState"] for i in g["instances"]] == ["Up", "Down"]
    assert g["instanceCounts"]["up"] == 1 and g["instanceCounts"]["down"] == 1
    clusters = (await client.get("/applications/shop/clusters", headers=auth(ADMIN))).json()
    assert clusters == {c: ["deployment web"] for c in ("c1", "c2", "c3")}
    lbs = (await client.get("/applications/shop/loadBalancers", headers=auth(ADMIN))).json()
    assert {lb["name"] for lb in lbs} == {"service web"}
    assert all(lb["serverGroups"][0]["name"] == "replicaSet web-5d4f" for lb in lbs)
    managers = (
        await client.get("/applications/shop/serverGroupManagers", headers=auth(ADMIN))
    ).json()
    assert len(managers) == 6 and managers[0]["status"]["stable"]["state"] is True
    app = (await client.get("/applications/shop", headers=auth(ADMIN))).json()
    assert app["clusterNames"]["c2"] == ["deployment web"]
    assert (await client.get("/applications/nope", headers=auth(ADMIN))).status_code == 404
    manifest = (await client.get("/manifests/c1/team-a/deployment web", headers=auth(ADMIN))).json()
    assert manifest["manifest"]["kind"] == "Deployment"
    assert manifest["moniker"] == {"app": "shop", "cluster": "deployment web"}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/objects", {"labelSelector": "app in (web"}),
        ("/api/v1/objects", {"labelSelector": "a==b==c"}),
        ("/api/v1/objects", {"limit": "0"}),
        ("/api/v1/objects", {"limit": "-5"}),
        ("/api/v1/objects", {"limit": "1000000"}),
        ("/api/v1/objects", {"limit": "ten"}),
        ("/api/v1/objects", {"continue": "garbage"}),
        ("/api/v1/objects", {"labelselector": "app=web"}),
        ("/api/v1/objects", {"at": "yesterday"}),
        ("/api/v1/objects", {"at": "99999999999999"}),
        ("/api/v1/objects", {"cluster": "Bad_Name"}),
        ("/api/v1/objects", {"namespace": "UPPER"}),
        ("/api/v1/objects", {"group": "no/slash"}),
        ("/api/v1/objects", {"count": "maybe"}),
        ("/api/v1/objects", {"count": "true", "limit": "5"}),
        ("/api/v1/objects", {"at": str(int(time.time() * 1000) - 1000)}),  # at needs one kind
        (POD.format(c="c1", ns="team-a", name="x"), {"foo": "bar"}),
        ("/api/v1/clusters/c1/objects/core/version1/Pod/team-a/x", {}),
        ("/api/v1/watch", {"from": "-1"}),
        ("/api/v1/watch", {"from": "abc"}),
        ("/api/v1/watch", {"from": "999999999"}),
        ("/api/v1/watch", {"labelSelector": "!"}),
        ("/manifests/c1/team-a/deployment", {}),
    ],
)
async def test_bad_input_is_400(
    client: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    r = await client.get(path, headers=auth(ADMIN), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["kind"] == "Status" and body["code"] == 400 and body["message"]


async def test_continue_token_of_another_query_is_400(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/objects", headers=auth(ADMIN), params={"limit": "2"})
    token = r.json()["metadata"]["continue"]
    other = await client.get(
        "/api/v1/objects",
        headers=auth(ADMIN),
        params={"limit": "2", "kind": "Pod", "continue": token},
    )
    assert other.status_code == 400
    assert "different query" in other.json()["message"]


async def test_point_in_time(
    fresh_client: tuple[httpx.AsyncClient, StoreWriter, QueryService],
) -> None:
    client, writer, service = fresh_client
    before = int(time.time() * 1000)
    await asyncio.sleep(0.01)
    changed = k8s_object("ConfigMap", "cfg-0", "team-a", labels={"app": "changed"})
    writer.write("c1", [changed])
    gone = k8s_object("ConfigMap", "cfg-1", "team-a")
    writer.write("c1", [gone], Op.DELETE)
    service.catch_up()
    url = "/api/v1/clusters/c1/objects/core/v1/ConfigMap/team-a"
    now = (await client.get(f"{url}/cfg-0", headers=auth(ADMIN))).json()
    assert now["metadata"]["labels"] == {"app": "changed"}
    then = await client.get(f"{url}/cfg-0", headers=auth(ADMIN), params={"at": str(before)})
    assert then.json()["metadata"]["labels"]["app"] == "web"
    assert (await client.get(f"{url}/cfg-1", headers=auth(ADMIN))).status_code == 404
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(before / 1000)) + f".{before % 1000:03d}Z"
    past = await client.get(f"{url}/cfg-1", headers=auth(ADMIN), params={"at": iso})
    assert past.status_code == 200
    listed = names(await client.get(url, headers=auth(ADMIN), params={"at": str(before)}))
    assert [n for _, _, n in listed] == [f"cfg-{i}" for i in range(5)]
    prefixed = names(
        await client.get(
            url, headers=auth(ADMIN), params={"at": str(before), "namePrefix": "cfg-1"}
        )
    )
    assert [n for _, _, n in prefixed] == ["cfg-1"]
    old = await client.get(
        f"{url}/cfg-0", headers=auth(ADMIN), params={"at": "2001-01-01T00:00:00Z"}
    )
    assert old.status_code == 410
    assert "outside the kept history" in old.json()["message"]


async def test_change_feed(
    fresh_client: tuple[httpx.AsyncClient, StoreWriter, QueryService],
) -> None:
    client, writer, service = fresh_client
    service.catch_up()
    start = service.hub.head
    await service.start()
    try:

        async def watch(token: str, **params: str) -> list[dict[str, Any]]:
            r = await client.get(
                "/api/v1/watch",
                headers=auth(token),
                params={"timeoutSeconds": "2", "from": str(start), **params},
            )
            assert r.status_code == 200, r.text
            assert r.headers["content-type"].startswith("text/event-stream")
            return _events(r.text)

        admin = asyncio.create_task(watch(ADMIN))
        team = asyncio.create_task(watch(TEAM_A))
        labelled = asyncio.create_task(watch(ADMIN, labelSelector="app=db", kind="ConfigMap"))
        await asyncio.sleep(0.3)
        writer.write("c1", [k8s_object("ConfigMap", "new-a", "team-a", labels={"app": "db"})])
        writer.write("c1", [k8s_object("ConfigMap", "new-b", "team-b", labels={"app": "db"})])
        writer.write("c2", [k8s_object("ConfigMap", "new-c", "team-a", labels={"app": "web"})])
        await asyncio.sleep(0.005)  # distinct event times: a version that lived 0 ms is not kept
        writer.write("c1", [k8s_object("ConfigMap", "new-a", "team-a")], Op.DELETE)
        admin_events, team_events, labelled_events = await asyncio.gather(admin, team, labelled)
        assert [(e["type"], e["cluster"], e["name"]) for e in admin_events] == [
            ("UPSERT", "c1", "new-a"),
            ("UPSERT", "c1", "new-b"),
            ("UPSERT", "c2", "new-c"),
            ("DELETE", "c1", "new-a"),
        ]
        assert admin_events[0]["object"]["metadata"]["name"] == "new-a"
        assert [(e["type"], e["name"]) for e in team_events] == [
            ("UPSERT", "new-a"),
            ("DELETE", "new-a"),
        ]
        assert [(e["type"], e["name"]) for e in labelled_events] == [
            ("UPSERT", "new-a"),
            ("UPSERT", "new-b"),
            ("DELETE", "new-a"),
        ]
        # Resume after the second event: only what followed it.
        resumed = await client.get(
            "/api/v1/watch",
            headers={**auth(ADMIN), "Last-Event-ID": str(admin_events[1]["position"])},
            params={"timeoutSeconds": "1"},
        )
        assert [e["name"] for e in _events(resumed.text)] == ["new-c", "new-a"]
    finally:
        await service.stop()


class _CountingReads:
    """The real reads, counting the change-feed reads the hub makes."""

    def __init__(self, reads: Any) -> None:
        self._reads = reads
        self.changes_read = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reads, name)

    def changes_since(self, position: int, limit: int = 1000) -> list[Change]:
        changes: list[Change] = self._reads.changes_since(position, limit)
        self.changes_read += len(changes)
        return changes


def _counted_hub(service: QueryService) -> tuple[_CountingReads, FeedHub]:
    """A hub (batches of 2) over the service's caught-up reader, counting its reads."""
    service.catch_up()
    reads = _CountingReads(service.reader)
    return reads, FeedHub(cast(ViewReads, reads), batch=2, queue_max=100)


def test_feed_hub_skips_the_feed_while_no_client_listens(
    fresh: tuple[StoreWriter, QueryService],
) -> None:
    writer, service = fresh
    reads, hub = _counted_hub(service)
    start = hub.head
    writer.write("c1", [k8s_object("ConfigMap", f"quiet-{i}", "team-a") for i in range(3)])
    service.reader.catch_up()
    assert hub.pump() == 0
    assert hub.head == start + 3 == service.reader.feed_bounds()[1]
    assert reads.changes_read == 0  # nobody listens: nothing decoded
    # A client resuming from before the quiet writes still gets them, from the store.
    assert [c.name for c in service.reader.changes_since(start)] == [
        "quiet-0",
        "quiet-1",
        "quiet-2",
    ]


async def test_feed_hub_hands_changes_to_a_listening_client(
    fresh: tuple[StoreWriter, QueryService],
) -> None:
    writer, service = fresh
    reads, hub = _counted_hub(service)
    everything = FeedFilter(
        scope=Scope("test", ("*",), ("*",)),
        clusters=None,
        group=None,
        kind=None,
        namespace=None,
        name_prefix="",
        selector=parse_selector(None),
    )
    stream = hub.stream(everything, hub.start_position(None), 5.0, 2.0, lambda: None)
    assert (await anext(stream)).startswith(b": kubedelta change feed")
    writer.write("c1", [k8s_object("ConfigMap", f"loud-{i}", "team-a") for i in range(3)])
    service.reader.catch_up()
    assert hub.pump() == 3  # read in batches of 2
    assert reads.changes_read == 3
    ids: list[str] = []
    while len(ids) < 3:  # one or more chunks
        frames = (await anext(stream)).decode()
        ids += [line for line in frames.split("\n") if line.startswith("id: ")]
    assert ids == [f"id: {hub.head - 2}", f"id: {hub.head - 1}", f"id: {hub.head}"]
    await cast(AsyncGenerator[bytes, None], stream).aclose()
    assert hub.subscribers == 0


def _events(text: str) -> list[dict[str, Any]]:
    out = []
    for frame in text.split("\n\n"):
        data = [line[6:] for line in frame.split("\n") if line.startswith("data: ")]
        ids = [line[4:] for line in frame.split("\n") if line.startswith("id: ")]
        if data:
            event = orjson.loads("\n".join(data))
            assert ids == [str(event["position"])]
            out.append(event)
    return out


async def test_openapi_is_published(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/api/v1/objects" in spec["paths"]
    assert "/applications/{application}/serverGroups" in spec["paths"]

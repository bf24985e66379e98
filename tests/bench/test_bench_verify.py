"""Verification and sync detection of the e2e harness: the simulator's state against a
view, object by object, with every difference counted; query API pages decoded down to
identity and resourceVersion; process trees walked once."""

from __future__ import annotations

import pytest

from bench.phases import sync_missing, verify
from bench.procs import descendants
from bench.queryclient import QueryRequestError, parse_page
from bench.simclient import (
    KindRef,
    ListResult,
    ObjectId,
    SimClient,
    SimulatorRequestError,
    parse_list,
)
from query.view import render_list
from simulator import Simulator, SimulatorConfig
from store.values import Item

CLUSTERS = ("v1", "v2", "v3")


class FakeView:
    """A view that answers from a fixed state per cluster; ``heal_after`` calls, a
    cluster's entry in ``later`` replaces it (a change that was still in flight)."""

    def __init__(
        self,
        states: dict[str, dict[ObjectId, str]],
        later: dict[str, dict[ObjectId, str]] | None = None,
        heal_after: int = 1,
    ) -> None:
        self.states = states
        self.later = later or {}
        self.heal_after = heal_after
        self.calls: dict[str, int] = {}

    async def cluster_versions(self, cluster: str) -> dict[ObjectId, str]:
        n = self.calls[cluster] = self.calls.get(cluster, 0) + 1
        if n > self.heal_after and cluster in self.later:
            return dict(self.later[cluster])
        return dict(self.states[cluster])


async def _source_states(client: SimClient) -> dict[str, dict[ObjectId, str]]:
    kinds = await client.kinds(CLUSTERS[0])
    return {c: await client.cluster_versions(c, kinds, page_size=7) for c in CLUSTERS}


async def test_verify_finds_nothing_when_the_view_equals_the_simulator() -> None:
    sim = Simulator(SimulatorConfig(clusters=CLUSTERS, objects_per_cluster=40, seed=5))
    async with sim.serve() as base_url, SimClient(base_url) as client:
        states = await _source_states(client)
        result = await verify(client, FakeView(states), CLUSTERS, retry_delay_s=0.0)
    assert result.differences == 0 and result.examples == []
    assert result.compared == sum(c.count() for c in sim.clusters.values()) > 0
    assert result.attempts == 1
    # The unpaginated LISTs of verify saw what 7-object pages see.
    assert sum(len(s) for s in states.values()) == result.compared


async def test_verify_counts_missing_extra_and_stale_objects() -> None:
    sim = Simulator(SimulatorConfig(clusters=CLUSTERS, objects_per_cluster=40, seed=5))
    async with sim.serve() as base_url, SimClient(base_url) as client:
        states = await _source_states(client)
        broken = {c: dict(s) for c, s in states.items()}
        keys = sorted(broken["v2"])
        del broken["v2"][keys[0]]  # missing
        broken["v2"][keys[1]] = "999999"  # stale
        broken["v3"][("", "ConfigMap", "default", "ghost")] = "1"  # extra
        view = FakeView(broken)
        result = await verify(client, view, CLUSTERS, attempts=2, retry_delay_s=0.0)
    assert result.differences == 3
    assert result.attempts == 2
    assert len(result.examples) == 3
    assert any("missing" in e for e in result.examples)
    assert any("stale" in e and "999999" in e for e in result.examples)
    assert any("extra" in e and "ghost" in e for e in result.examples)
    # Only the clusters that differed were read again.
    assert view.calls == {"v1": 1, "v2": 2, "v3": 2}


async def test_verify_rechecks_a_cluster_until_a_late_change_arrives() -> None:
    sim = Simulator(SimulatorConfig(clusters=CLUSTERS, objects_per_cluster=20, seed=9))
    async with sim.serve() as base_url, SimClient(base_url) as client:
        states = await _source_states(client)
        behind = {c: dict(s) for c, s in states.items()}
        behind["v1"].pop(sorted(behind["v1"])[0])
        view = FakeView(behind, later={"v1": states["v1"]}, heal_after=1)
        result = await verify(client, view, CLUSTERS, retry_delay_s=0.0)
    assert result.differences == 0
    assert result.attempts == 2


def test_query_pages_decode_to_identity_and_version() -> None:
    items = [
        Item(
            "c1",
            "apps",
            "Deployment",
            "web",
            "api",
            b'{"apiVersion":"apps/v1","kind":"Deployment",'
            b'"metadata":{"name":"api","namespace":"web","resourceVersion":"17","labels":{"a":"b"}},'
            b'"spec":{"replicas":3}}',
        ),
        Item(
            "c1",
            "",
            "Node",
            "",
            "n1",
            b'{"apiVersion":"v1","kind":"Node","metadata":'
            b'{"name":"n1","resourceVersion":"4"},"status":{"x":[1,2,{"y":null}]}}',
        ),
    ]
    into: dict[ObjectId, str] = {}
    token = parse_page(render_list(items, "next-page"), into)
    assert token == "next-page"
    assert into == {("apps", "Deployment", "web", "api"): "17", ("", "Node", "", "n1"): "4"}
    assert parse_page(render_list([], None), into) is None
    with pytest.raises(QueryRequestError):
        parse_page(b'{"items":[{"object":{"kind":"X"}}]}', into)  # no metadata


def test_simulator_lists_decode_and_refuse_malformed_pages() -> None:
    kind = KindRef("", "v1", "Pod", "pods", True)
    into = ListResult()
    body = (
        b'{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":[{"metadata":'
        b'{"name":"p","namespace":"n","resourceVersion":"3","uid":"u"},"spec":{"a":[1]}}]}'
    )
    assert parse_list(body, kind, into, with_names=False) == (None, "9")
    assert into.versions == {("", "Pod", "n", "p"): "3"}
    empty = b'{"kind":"PodList","metadata":{"resourceVersion":"9"},"items":null}'
    assert parse_list(empty, kind, ListResult(), with_names=True) == (None, "9")
    with pytest.raises(SimulatorRequestError):
        parse_list(b"[1,2]", kind, ListResult(), with_names=False)


def test_sync_is_complete_only_when_every_cluster_is() -> None:
    expected = {"a": 10, "b": 5}
    assert sync_missing(expected, {"a": 10, "b": 5}) == 0
    # A surplus in one cluster does not hide a shortfall in another.
    assert sync_missing(expected, {"a": 12, "b": 3}) == 2
    assert sync_missing(expected, {"a": 10}) == 5


def test_descendants_walk_the_whole_tree() -> None:
    children = {1: [2, 3], 2: [4], 4: [5], 9: [10]}
    assert sorted(descendants(1, children)) == [2, 3, 4, 5]
    assert descendants(5, children) == []

"""Discovery over HTTP against the simulator: aggregated (2 requests) and legacy (one per
group version) give the same kinds; aggregated parsing is pure and checked alone."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson

from producers.apiclient import KubeApi
from producers.config import ApiConnectionConfig
from producers.discovery import Discovery, discover
from producers.kinds import KindRef, kinds_of_aggregated
from simulator import Simulator, SimulatorConfig
from simulator.server import aggregated_discovery_document


@asynccontextmanager
async def discovered(aggregated: bool) -> AsyncIterator[tuple[Discovery, int, Simulator]]:
    """(discovery of cluster d1, HTTP requests it took, the simulator)."""
    sim = Simulator(
        SimulatorConfig(
            clusters=("d1",), objects_per_cluster=30, seed=5, aggregated_discovery=aggregated
        )
    )
    sim.cluster("d1").add_crd(group="acme.io", kind="Gizmo", plural="gizmos")
    async with sim.serve() as base:
        api = await KubeApi.connect(ApiConnectionConfig(url=f"{base}/clusters/d1"))
        try:
            before = sim.api.http_requests
            found = await discover(api)
            yield found, sim.api.http_requests - before, sim
        finally:
            await api.close()


async def test_aggregated_and_legacy_discovery_find_the_same_kinds() -> None:
    async with discovered(aggregated=True) as (fast, fast_requests, _):
        pass
    async with discovered(aggregated=False) as (slow, slow_requests, _):
        pass
    assert fast_requests == 2
    assert slow_requests > 2
    assert set(fast.kinds) == set(slow.kinds) and len(fast.kinds) == len(slow.kinds)
    assert fast.failed_groups == slow.failed_groups == frozenset()
    labels = {(k.group, k.kind) for k in fast.kinds}
    assert {("", "Pod"), ("apps", "Deployment"), ("acme.io", "Gizmo")} <= labels
    assert ("", "Binding") not in labels  # create-only: not listable


async def test_simulator_document_parses_to_kinds_with_scope_and_preferred_version() -> None:
    sim = Simulator(SimulatorConfig(clusters=("d2",), objects_per_cluster=10, seed=6))
    core, _ = kinds_of_aggregated(
        orjson.loads(aggregated_discovery_document(sim.cluster("d2"), core=True))
    )
    assert KindRef("", "v1", "Pod", "pods", True) in core
    assert KindRef("", "v1", "Node", "nodes", False) in core
    assert all("/" not in k.plural for k in core)


def test_a_stale_group_is_unknown_and_the_first_version_is_preferred() -> None:
    doc = {
        "kind": "APIGroupDiscoveryList",
        "items": [
            {
                "metadata": {"name": "metrics.k8s.io"},
                "versions": [{"version": "v1beta1", "freshness": "Stale", "resources": []}],
            },
            {
                "metadata": {"name": "example.com"},
                "versions": [
                    {
                        "version": "v2",
                        "resources": [
                            {
                                "resource": "widgets",
                                "responseKind": {"kind": "Widget"},
                                "scope": "Cluster",
                                "verbs": ["list", "watch"],
                            },
                            {
                                "resource": "widgetviews",
                                "responseKind": {"kind": "WidgetView"},
                                "scope": "Namespaced",
                                "verbs": ["get"],
                            },
                        ],
                    },
                    {"version": "v1", "resources": []},
                ],
            },
        ],
    }
    kinds, failed = kinds_of_aggregated(doc)
    assert kinds == [KindRef("example.com", "v2", "Widget", "widgets", False)]
    assert failed == {"metrics.k8s.io"}

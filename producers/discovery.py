"""Discovery: which kinds the API server serves now. Thin I/O around ``producers.kinds``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from producers.apiclient import KubeApi
from producers.errors import ApiError
from producers.kinds import (
    KindRef,
    group_versions,
    is_aggregated,
    kinds_of_aggregated,
    kinds_of_resource_list,
)

#: Aggregated discovery first (v2, then v2beta1: Kubernetes 1.26+), legacy otherwise.
#: Aggregated, a discovery round is 2 requests; legacy, 2 plus one per group version
#: (~10 on a small cluster, dozens with CRDs), for each of hundreds of clusters a
#: multiplexed producer watches.
DISCOVERY_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


@dataclass(frozen=True, slots=True)
class Discovery:
    kinds: tuple[KindRef, ...]  #: every listable+watchable kind of the preferred versions
    #: Groups whose resource list could not be fetched (an aggregated API down): their
    #: kinds are unknown this round, so their watches are neither started nor stopped.
    failed_groups: frozenset[str]


async def discover(api: KubeApi, timeout_s: float = 30.0, concurrency: int = 8) -> Discovery:
    core = await api.get_json("/api", timeout_s=timeout_s, accept=DISCOVERY_ACCEPT)
    groups = await api.get_json("/apis", timeout_s=timeout_s, accept=DISCOVERY_ACCEPT)
    if is_aggregated(core) and is_aggregated(groups):
        core_kinds, core_failed = kinds_of_aggregated(core)
        group_kinds, groups_failed = kinds_of_aggregated(groups)
        return Discovery(tuple(core_kinds + group_kinds), frozenset(core_failed | groups_failed))
    if is_aggregated(core) or is_aggregated(groups):
        # Mixed answers (a proxy in between?): ask again the legacy way.
        core = await api.get_json("/api", timeout_s=timeout_s)
        groups = await api.get_json("/apis", timeout_s=timeout_s)
    gate = asyncio.Semaphore(concurrency)

    async def fetch(group: str, version: str) -> tuple[str, list[KindRef] | None]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        async with gate:
            try:
                doc = await api.get_json(path, timeout_s=timeout_s)
            except ApiError:
                return group, None
        return group, kinds_of_resource_list(group, version, doc)

    results = await asyncio.gather(*(fetch(g, v) for g, v in group_versions(core, groups)))
    kinds: list[KindRef] = []
    failed: set[str] = set()
    for group, refs in results:
        if refs is None:
            failed.add(group)
        else:
            kinds.extend(refs)
    return Discovery(tuple(kinds), frozenset(failed))

"""Discovery: which kinds the API server serves now. Thin I/O around ``producers.kinds``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from producers.apiclient import KubeApi
from producers.errors import ApiError
from producers.kinds import KindRef, group_versions, kinds_of_resource_list


@dataclass(frozen=True, slots=True)
class Discovery:
    kinds: tuple[KindRef, ...]  #: every listable+watchable kind of the preferred versions
    #: Groups whose resource list could not be fetched (an aggregated API down): their
    #: kinds are unknown this round, so their watches are neither started nor stopped.
    failed_groups: frozenset[str]


async def discover(api: KubeApi, timeout_s: float = 30.0, concurrency: int = 8) -> Discovery:
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

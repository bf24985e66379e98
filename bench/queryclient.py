"""The query API as the benchmarks read it: per-cluster counts (is everything visible
yet?) and every object's identity and resourceVersion (does the view equal the source?)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from bench.errors import BenchError
from bench.simclient import ObjectId

#: Largest LIST page the query API serves (query.params.Limits.max_limit).
PAGE_LIMIT = 10_000


class QueryRequestError(BenchError):
    """The query API answered with an unexpected status."""

    retriable = True


@dataclass(frozen=True, slots=True)
class ClusterCount:
    cluster: str
    objects: int
    sync_state: str


def group_of(api_version: str) -> str:
    """``apps/v1`` -> ``apps``; ``v1`` -> "" (the core group)."""
    group, slash, _version = api_version.rpartition("/")
    return group if slash else ""


class QueryClient:
    """Talks to one query service. Use as an async context manager."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> QueryClient:
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=600),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, path: str) -> bytes:
        if self._session is None:
            raise RuntimeError("QueryClient used outside 'async with'")
        try:
            async with self._session.get(self.base_url + path) as response:
                body = await response.read()
                if response.status != 200:
                    raise QueryRequestError(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
                return body
        except aiohttp.ClientError as exc:
            raise QueryRequestError(f"GET {path}: {exc}") from exc

    async def get_json(self, path: str) -> Any:
        return orjson.loads(await self.get(path))

    async def ready(self) -> bool:
        try:
            await self.get("/healthz")
        except QueryRequestError:
            return False
        return True

    async def cluster_counts(self) -> list[ClusterCount]:
        document: dict[str, Any] = orjson.loads(await self.get("/api/v1/clusters"))
        return [
            ClusterCount(c["cluster"], int(c.get("objectCount") or 0), str(c.get("syncState")))
            for c in document.get("clusters", [])
        ]

    async def cluster_versions(self, cluster: str) -> dict[ObjectId, str]:
        """Identity -> resourceVersion of every object of ``cluster`` in the view."""
        versions: dict[ObjectId, str] = {}
        token: str | None = None
        while True:
            query: dict[str, Any] = {"cluster": cluster, "limit": PAGE_LIMIT}
            if token:
                query["continue"] = token
            document = orjson.loads(await self.get(f"/api/v1/objects?{urlencode(query)}"))
            for item in document.get("items", []):
                obj = item["object"]
                meta = obj["metadata"]
                key = (
                    group_of(str(obj.get("apiVersion", ""))),
                    str(obj.get("kind", "")),
                    str(meta.get("namespace", "")),
                    str(meta["name"]),
                )
                versions[key] = str(meta.get("resourceVersion", ""))
            token = (document.get("metadata") or {}).get("continue")
            if not token:
                return versions

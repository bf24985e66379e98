"""The query API as the benchmarks read it: object counts (is everything visible yet?),
per-cluster counts and committed offsets, and every object's identity and
resourceVersion (does the view equal the source?). LIST pages are decoded with msgspec
against a schema of just those fields (the rest of each object is skipped unparsed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
import msgspec
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
    next_offsets: int = 0  #: sum of the committed next offsets of its partitions: records read


class _ObjectMeta(msgspec.Struct):
    name: str
    namespace: str = ""
    resource_version: str = msgspec.field(name="resourceVersion", default="")


class _Object(msgspec.Struct):
    metadata: _ObjectMeta
    api_version: str = msgspec.field(name="apiVersion", default="")
    kind: str = ""


class _Item(msgspec.Struct):
    object: _Object


class _PageMeta(msgspec.Struct):
    continue_: str | None = msgspec.field(name="continue", default=None)


class _Page(msgspec.Struct):
    metadata: _PageMeta = msgspec.field(default_factory=_PageMeta)
    items: list[_Item] = msgspec.field(default_factory=list)


_PAGE_DECODER = msgspec.json.Decoder(_Page)


def parse_page(body: bytes, into: dict[ObjectId, str]) -> str | None:
    """Fold one ``/api/v1/objects`` page into ``into`` (identity -> resourceVersion);
    returns the continue token, None on the last page."""
    try:
        page = _PAGE_DECODER.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise QueryRequestError(f"malformed LIST response: {exc}") from exc
    groups: dict[str, str] = {}
    for item in page.items:
        obj = item.object
        meta = obj.metadata
        group = groups.get(obj.api_version)
        if group is None:
            group = groups[obj.api_version] = group_of(obj.api_version)
        into[(group, obj.kind, meta.namespace, meta.name)] = meta.resource_version
    return page.metadata.continue_ or None


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

    async def object_count(self) -> int:
        """Objects in the view over every cluster: the per-kind counters, no scan."""
        document: dict[str, Any] = orjson.loads(await self.get("/api/v1/objects?count=true"))
        return int(document["count"])

    async def cluster_counts(self) -> list[ClusterCount]:
        """Every cluster's object count and records read (one status document each)."""
        document: dict[str, Any] = orjson.loads(await self.get("/api/v1/clusters"))
        return [
            ClusterCount(
                c["cluster"],
                int(c.get("objectCount") or 0),
                str(c.get("syncState")),
                sum(int(p.get("nextOffset") or 0) for p in c.get("partitions") or ()),
            )
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
            token = parse_page(await self.get(f"/api/v1/objects?{urlencode(query)}"), versions)
            if not token:
                return versions

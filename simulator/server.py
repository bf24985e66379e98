"""The HTTP side: the Kubernetes API wire protocol for every simulated cluster, plus
control endpoints. Paths:

- ``/clusters/{cluster}/...``: that cluster's API server (discovery, LIST, WATCH, GET,
  POST, PUT, DELETE), answering exactly like the real one on the wire;
- ``/_sim/...``: fault knobs, churn control and stats (see :func:`handle_control`).

Responses are assembled from stored JSON bytes; nothing is re-encoded per request
except small metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from simulator import kinds
from simulator.cluster import ClusterState, KindStore, ListPage, WatchEnd
from simulator.config import ChurnMix
from simulator.errors import (
    BadRequestError,
    InvalidObjectError,
    ResourceExpiredError,
    SimulatorError,
    UnknownClusterError,
    UnknownKindError,
)
from simulator.resource_version import decode_rv, encode_rv
from simulator.selectors import parse_field_selector, parse_label_selector

if TYPE_CHECKING:
    from simulator.simulator import Simulator

_JSON = "application/json"
_WATCH_WRITE_BATCH = 500  #: initial-event lines per write
_COMPRESS_ABOVE = 128 * 1024  #: the real server's gzip threshold
#: First path segments of a real API server's own endpoints (served for ``root_cluster``).
_ROOT_PATHS = frozenset({"api", "apis", "version", "openapi", "healthz", "readyz", "livez"})
_FAULT_REASONS = {
    429: "TooManyRequests",
    500: "InternalError",
    502: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


# == Status objects ===========================================================================
def status_bytes(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> bytes:
    """A ``Status`` object as the real API server writes it."""
    status: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        status["details"] = details
    status["code"] = code
    return orjson.dumps(status)


def status_response(
    code: int,
    reason: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=code,
        body=status_bytes(code, reason, message, details),
        content_type=_JSON,
        headers=headers,
    )


def error_response(error: SimulatorError, details: dict[str, Any] | None = None) -> web.Response:
    if isinstance(error, UnknownKindError | UnknownClusterError):
        return status_response(404, "NotFound", str(error), details)
    extra = details
    if error.http_status == 504:
        extra = {
            **(details or {}),
            "causes": [{"reason": "ResourceVersionTooLarge", "message": str(error)}],
            "retryAfterSeconds": 1,
        }
    return status_response(error.http_status, error.reason, str(error), extra)


def json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, content_type=_JSON)


# == discovery ================================================================================
def version_document(kubernetes_version: str) -> bytes:
    major, minor = kubernetes_version.lstrip("v").split(".")[:2]
    return orjson.dumps(
        {
            "major": major,
            "minor": minor,
            "gitVersion": kubernetes_version,
            "gitCommit": "kubedelta-simulator",
            "gitTreeState": "clean",
            "buildDate": "2024-08-14T19:29:23Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    )


def _group_versions(cluster: ClusterState) -> dict[str, list[str]]:
    """Group -> versions, in discovery order; the core group is ""."""
    groups: dict[str, list[str]] = {}
    for spec in cluster.kind_specs():
        versions = groups.setdefault(spec.group, [])
        if spec.version not in versions:
            versions.append(spec.version)
    for extra in kinds.EXTRA_RESOURCES:
        versions = groups.setdefault(extra.group, [])
        if extra.version not in versions:
            versions.append(extra.version)
    return groups


def _group_document(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_versions_document(host: str) -> bytes:
    return orjson.dumps(
        {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
        }
    )


def api_group_list_document(cluster: ClusterState) -> bytes:
    groups = [_group_document(g, v) for g, v in _group_versions(cluster).items() if g]
    return orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})


def api_group_document(cluster: ClusterState, group: str) -> bytes | None:
    versions = _group_versions(cluster).get(group)
    if not group or not versions:
        return None
    return orjson.dumps(
        {"kind": "APIGroup", "apiVersion": "v1", **_group_document(group, versions)}
    )


def _resource_entries(cluster: ClusterState, group: str, version: str) -> list[dict[str, Any]]:
    """The APIResource entries of one group version (subresources as ``parent/sub``)."""
    resources: list[dict[str, Any]] = []
    for spec in cluster.kind_specs():
        if spec.group == group and spec.version == version:
            resources.extend(spec.discovery_entries())
    for extra in kinds.EXTRA_RESOURCES:
        if extra.group == group and extra.version == version:
            resources.append(extra.discovery_entry())
    return resources


def resource_list_document(cluster: ClusterState, group: str, version: str) -> bytes | None:
    resources = _resource_entries(cluster, group, version)
    if not resources:
        return None
    group_version = f"{group}/{version}" if group else version
    document: dict[str, Any] = {
        "kind": "APIResourceList",
        "groupVersion": group_version,
        "resources": resources,
    }
    if group:
        document = {"kind": "APIResourceList", "apiVersion": "v1", **document}
    return orjson.dumps(document)


#: Media type of aggregated discovery, as a client asks for it and the server answers.
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str) -> bool:
    """Whether an ``Accept`` header asks for aggregated discovery (v2; v2beta1 too)."""
    return any(
        "g=apidiscovery.k8s.io" in part and "as=APIGroupDiscoveryList" in part
        for part in accept.split(",")
    )


def _discovery_resources(group: str, version: str, entries: list[dict[str, Any]]) -> list[Any]:
    """APIResource entries -> APIResourceDiscovery (subresources nested in their parent)."""
    out: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = str(entry["name"])
        kind = {
            "group": entry.get("group", group),
            "version": entry.get("version", version),
            "kind": entry["kind"],
        }
        parent, slash, sub = name.partition("/")
        if slash:
            if parent in out:
                out[parent].setdefault("subresources", []).append(
                    {"subresource": sub, "responseKind": kind, "verbs": entry["verbs"]}
                )
            continue
        resource: dict[str, Any] = {
            "resource": name,
            "responseKind": kind,
            "scope": "Namespaced" if entry["namespaced"] else "Cluster",
            "singularResource": entry.get("singularName", ""),
            "verbs": entry["verbs"],
        }
        for field in ("shortNames", "categories"):
            if field in entry:
                resource[field] = entry[field]
        out[name] = resource
    return list(out.values())


def aggregated_discovery_document(cluster: ClusterState, core: bool) -> bytes:
    """``/api`` (core) or ``/apis`` (every other group) as one APIGroupDiscoveryList:
    every group, its versions in preference order, each with its resources."""
    items = []
    for group, versions in _group_versions(cluster).items():
        if (group == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": _discovery_resources(
                            group, v, _resource_entries(cluster, group, v)
                        ),
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return orjson.dumps(
        {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }
    )


def render_list(page: ListPage) -> bytes:
    """A ``<Kind>List`` from item bytes: concatenation, no re-encoding."""
    spec = page.store.spec
    meta: dict[str, Any] = {"resourceVersion": encode_rv(page.rv)}
    if page.continue_token is not None:
        meta["continue"] = page.continue_token
        if page.remaining is not None:
            meta["remainingItemCount"] = page.remaining
    head = orjson.dumps({"kind": spec.list_kind, "apiVersion": spec.api_version, "metadata": meta})
    prefix = head[:-1] + b',"items":['
    if not page.items:
        return prefix + b"]}"
    # One join copies the page's ~1.7 MB once; `a + b + c` copied it three times
    # (~10 % of the simulator's CPU during a 1M initial sync).
    parts = list(page.items)
    parts[0] = prefix + parts[0]
    parts[-1] = parts[-1] + b"]}"
    return b",".join(parts)


def _is_collection(rest: list[str]) -> bool:
    """``api/v1/{plural}``, ``apis/{g}/{v}/{plural}``, or namespaced under ``namespaces/{ns}``."""
    if rest[:1] == ["api"]:
        segments = rest[2:]
    elif rest[:1] == ["apis"]:
        segments = rest[3:]
    else:
        return False
    segments = [s for s in segments if s]
    return len(segments) == 1 or (len(segments) == 3 and segments[0] == "namespaces")


# == request handling =========================================================================
class ApiServer:
    """aiohttp handlers for one :class:`~simulator.simulator.Simulator`."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.config = sim.config
        self.http_requests = 0
        self.lists_in_flight = 0  #: collection GETs (not watches) being answered now
        self.peak_lists_in_flight = 0  #: the most at once since start
        self._stopping = False

    def application(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def stop_watches(self) -> None:
        """End every open watch cleanly (the server is about to stop)."""
        self._stopping = True
        for cluster in self.sim.clusters.values():
            cluster.close_watches()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.http_requests += 1
        parts = request.path.split("/")
        try:
            if len(parts) >= 3 and parts[1] == "clusters":
                return await self._cluster_request(request, parts[2], parts[3:])
            if len(parts) >= 2 and parts[1] == "_sim":
                return await self._control(request, parts[2:])
            root = self.config.root_cluster
            if root is not None and len(parts) >= 2 and parts[1] in _ROOT_PATHS:
                return await self._cluster_request(request, root, parts[1:])
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        except SimulatorError as error:
            return error_response(error)

    # -- the API of one cluster -------------------------------------------------------------
    async def _cluster_request(
        self, request: web.Request, name: str, rest: list[str]
    ) -> web.StreamResponse:
        # LISTs in progress across every cluster (tests and benchmarks check how many
        # a multiplexed producer runs at once; with a latency fault they overlap).
        listing = (
            request.method == "GET"
            and _is_collection(rest)
            and not _is_true(request.query.get("watch", ""))
        )
        if listing:
            self.lists_in_flight += 1
            self.peak_lists_in_flight = max(self.peak_lists_in_flight, self.lists_in_flight)
        try:
            return await self._cluster_request_inner(request, name, rest)
        finally:
            if listing:
                self.lists_in_flight -= 1

    async def _cluster_request_inner(
        self, request: web.Request, name: str, rest: list[str]
    ) -> web.StreamResponse:
        cluster = self.sim.clusters.get(name)
        if cluster is None:
            return status_response(404, "NotFound", f"cluster {name!r} is not simulated")
        token = self.config.required_token
        if token is not None and request.headers.get("Authorization") != f"Bearer {token}":
            return status_response(401, "Unauthorized", "Unauthorized")
        cluster.counters.requests += 1
        if cluster.faults.latency_ms > 0:
            await asyncio.sleep(cluster.faults.latency_ms / 1000.0)
        fault = cluster.take_fault()
        if fault is not None:
            retry_after = str(self.config.retry_after_s)
            if fault == 429:
                return status_response(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    {"retryAfterSeconds": self.config.retry_after_s},
                    headers={"Retry-After": retry_after},
                )
            return status_response(
                fault, _FAULT_REASONS.get(fault, "InternalError"), f"simulated failure {fault}"
            )
        if rest and rest[-1] == "":
            rest = rest[:-1]
        if not rest:
            return json_response(orjson.dumps({"paths": ["/api", "/api/v1", "/apis", "/version"]}))
        head = rest[0]
        is_discovery = (
            head == "version"
            or (head == "api" and len(rest) <= 2)
            or (head == "apis" and len(rest) <= 3)
        )
        if is_discovery and request.method != "GET":
            return status_response(405, "MethodNotAllowed", f"{request.method} is not supported")
        if head == "version" and len(rest) == 1:
            return json_response(version_document(self.config.kubernetes_version))
        aggregated = (
            len(rest) == 1
            and head in ("api", "apis")
            and self.config.aggregated_discovery
            and wants_aggregated(request.headers.get("Accept", ""))
        )
        if aggregated:
            # One document per request instead of one per group version: a producer's
            # discovery round is 2 requests, not ~10.
            return web.Response(
                body=aggregated_discovery_document(cluster, core=head == "api"),
                headers={"Content-Type": AGGREGATED_DISCOVERY},
            )
        if head == "api":
            if len(rest) == 1:
                return json_response(api_versions_document(request.host))
            if rest[1] != "v1":
                return _not_found()
            if len(rest) == 2:
                return _maybe(resource_list_document(cluster, "", "v1"))
            return await self._resource(request, cluster, "", "v1", rest[2:])
        if head == "apis":
            if len(rest) == 1:
                return json_response(api_group_list_document(cluster))
            if len(rest) == 2:
                return _maybe(api_group_document(cluster, rest[1]))
            if len(rest) == 3:
                return _maybe(resource_list_document(cluster, rest[1], rest[2]))
            return await self._resource(request, cluster, rest[1], rest[2], rest[3:])
        return _not_found()

    async def _resource(
        self,
        request: web.Request,
        cluster: ClusterState,
        group: str,
        version: str,
        segments: list[str],
    ) -> web.StreamResponse:
        namespace = ""
        if len(segments) >= 3 and segments[0] == "namespaces":
            namespace = segments[1]
            segments = segments[2:]
        if not segments or len(segments) > 2:
            return _not_found()
        store = cluster.store_for_resource(group, version, segments[0])
        if namespace and not store.spec.namespaced:
            return _not_found()
        name = segments[1] if len(segments) == 2 else ""
        if name and store.spec.namespaced and not namespace:
            return _not_found()
        details = {"name": name, "group": group, "kind": store.spec.plural} if name else None
        try:
            method = request.method
            if name:
                if method == "GET":
                    return json_response(cluster.get_bytes(store, namespace, name))
                if method == "DELETE":
                    existing = cluster.get_bytes(store, namespace, name)
                    cluster.delete(group, store.spec.kind, namespace, name)
                    return json_response(existing)
                if method == "PUT":
                    obj = await _read_object(request, store, namespace, name)
                    return json_response(orjson.dumps(cluster.update(obj)))
                return status_response(405, "MethodNotAllowed", f"{method} is not supported")
            if method == "POST":
                obj = await _read_object(request, store, namespace, None)
                return json_response(orjson.dumps(cluster.create(obj)), status=201)
            if method != "GET":
                return status_response(405, "MethodNotAllowed", f"{method} is not supported")
            query = request.query
            if _is_true(query.get("watch", "")):
                return await self._watch(request, cluster, store, namespace)
            page = cluster.list_page(
                store,
                namespace,
                parse_label_selector(query.get("labelSelector", "")),
                parse_field_selector(query.get("fieldSelector", "")),
                limit=_int_param(query.get("limit", "0"), "limit"),
                continue_token=query.get("continue", ""),
                resource_version=query.get("resourceVersion", ""),
                resource_version_match=query.get("resourceVersionMatch", ""),
            )
            return self._list_response(request, render_list(page))
        except SimulatorError as error:
            return error_response(error, details)

    def _list_response(self, request: web.Request, body: bytes) -> web.Response:
        response = json_response(body)
        if (
            self.config.compress_responses
            and len(body) > _COMPRESS_ABOVE
            and "gzip" in request.headers.get("Accept-Encoding", "")
        ):
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _watch(
        self, request: web.Request, cluster: ClusterState, store: KindStore, namespace: str
    ) -> web.StreamResponse:
        query = request.query
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""))
        rv_text = query.get("resourceVersion", "")
        bookmarks = _is_true(query.get("allowWatchBookmarks", ""))
        send_initial_param = query.get("sendInitialEvents", "")
        send_initial = _is_true(send_initial_param) if send_initial_param else rv_text in ("", "0")
        start_rv = decode_rv(rv_text) if rv_text not in ("", "0") else None
        timeout_s = (
            float(_int_param(query["timeoutSeconds"], "timeoutSeconds"))
            if "timeoutSeconds" in query
            else self.config.default_watch_timeout_s
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        response = web.StreamResponse(
            status=200, headers={"Content-Type": _JSON, "Cache-Control": "no-cache, private"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        handle = cluster.open_watch(store, namespace, labels, fields)
        try:
            if send_initial:
                lines, handle.cursor = cluster.initial_events(store, namespace, labels, fields)
                for start in range(0, len(lines), _WATCH_WRITE_BATCH):
                    await response.write(b"".join(lines[start : start + _WATCH_WRITE_BATCH]))
                if send_initial_param and bookmarks:
                    await response.write(
                        store.bookmark_line(handle.cursor, initial_events_end=True)
                    )
            else:
                handle.cursor = start_rv if start_rv is not None else cluster.current_rv
            interval = self.config.bookmark_interval_s
            next_bookmark = loop.time() + interval
            while True:
                if handle.end is WatchEnd.DROP:
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                if handle.end is WatchEnd.EXPIRED:
                    await response.write(
                        _expired_event(f"too old resource version: {encode_rv(handle.cursor)}")
                    )
                    break
                if handle.end is WatchEnd.CLOSE:
                    break
                now_rv = cluster.current_rv
                try:
                    lines = handle.take(now_rv)
                except ResourceExpiredError as error:
                    await response.write(_expired_event(str(error)))
                    break
                if lines:
                    await response.write(b"".join(lines))
                now = loop.time()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bookmark:
                    await response.write(store.bookmark_line(now_rv))
                    next_bookmark = now + interval
                wake_at = min(deadline, next_bookmark) if bookmarks else deadline
                await handle.wait(wake_at - loop.time())
        except ConnectionError:
            return response  # the client went away: nothing left to tell it
        finally:
            cluster.close_watch(handle)
        with contextlib.suppress(ConnectionError):  # the client left as the watch ended
            await response.write_eof()
        return response

    # -- control endpoints -----------------------------------------------------------------
    async def _control(self, request: web.Request, rest: list[str]) -> web.StreamResponse:
        """``GET /_sim/stats``; ``POST /_sim/churn/{start,stop}``; ``POST
        /_sim/clusters/{c}/{expire-history,force-410,drop-connections,throttle?n=,
        fail?n=&status=,latency?ms=,churn/start,churn/stop,crds?group=&version=&kind=&plural=&scope=}``;
        ``DELETE /_sim/clusters/{c}/crds?group=&kind=``."""
        query = request.query
        if rest == ["stats"]:
            per_cluster = _is_true(query.get("per_cluster", ""))
            return json_response(orjson.dumps(self.sim.stats(per_cluster=per_cluster)))
        if rest[:1] == ["churn"] and len(rest) == 2 and request.method == "POST":
            return await self._churn_control(rest[1], query, None)
        if len(rest) >= 3 and rest[0] == "clusters":
            cluster = self.sim.cluster(rest[1])
            action = "/".join(rest[2:])
            if action == "crds" and request.method == "DELETE":
                cluster.remove_crd(query.get("group", "example.com"), query.get("kind", "Widget"))
                return json_response(b'{"ok":true}')
            if request.method != "POST":
                return status_response(405, "MethodNotAllowed", "control actions are POST")
            if action == "expire-history":
                cluster.expire_history()
                return json_response(b'{"ok":true}')
            if action == "force-410":
                return json_response(orjson.dumps({"ok": True, "watches": cluster.force_410_now()}))
            if action == "drop-connections":
                return json_response(
                    orjson.dumps({"ok": True, "watches": cluster.drop_connections()})
                )
            if action == "throttle":
                cluster.throttle(_int_param(query.get("n", "1"), "n"))
                return json_response(b'{"ok":true}')
            if action == "fail":
                cluster.fail(
                    _int_param(query.get("n", "1"), "n"),
                    _int_param(query.get("status", "503"), "status"),
                )
                return json_response(b'{"ok":true}')
            if action == "latency":
                cluster.set_latency(_float_param(query.get("ms", "0"), "ms"))
                return json_response(b'{"ok":true}')
            if action in ("churn/start", "churn/stop"):
                return await self._churn_control(rest[3], query, cluster.name)
            if action == "crds":
                crd = cluster.add_crd(
                    group=query.get("group", "example.com"),
                    version=query.get("version", "v1"),
                    kind=query.get("kind", "Widget"),
                    plural=query.get("plural", "widgets"),
                    scope=query.get("scope", "Namespaced"),
                )
                return json_response(orjson.dumps(crd), status=201)
        return status_response(404, "NotFound", "unknown control endpoint")

    async def _churn_control(self, verb: str, query: Any, cluster: str | None) -> web.Response:
        if verb == "stop":
            await self.sim.stop_churn()
            return json_response(b'{"ok":true}')
        if verb != "start":
            return status_response(404, "NotFound", "unknown churn action")
        defaults = ChurnMix()
        mix = ChurnMix(
            creates=_float_param(query.get("creates", str(defaults.creates)), "creates"),
            pod_status_updates=_float_param(
                query.get("pod_status_updates", str(defaults.pod_status_updates)),
                "pod_status_updates",
            ),
            deployment_scales=_float_param(
                query.get("deployment_scales", str(defaults.deployment_scales)), "deployment_scales"
            ),
            deletes=_float_param(query.get("deletes", str(defaults.deletes)), "deletes"),
        )
        rate = _float_param(query.get("rate", "10"), "rate")
        await self.sim.stop_churn()
        self.sim.start_churn(
            rate_per_s=rate, mix=mix, clusters=None if cluster is None else (cluster,)
        )
        return json_response(
            orjson.dumps({"ok": True, "rate_per_s": rate, "started_at": time.time()})
        )


def _is_true(text: str) -> bool:
    """Go's strconv.ParseBool, which the real server uses (clients send "True" too)."""
    return text in ("1", "t", "T", "TRUE", "true", "True")


def _expired_event(message: str) -> bytes:
    return b'{"type":"ERROR","object":' + status_bytes(410, "Expired", message) + b"}\n"


def _not_found() -> web.Response:
    return status_response(404, "NotFound", "the server could not find the requested resource")


def _maybe(document: bytes | None) -> web.Response:
    return _not_found() if document is None else json_response(document)


def _int_param(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BadRequestError(f"invalid {name} {text!r}: not an integer") from None


def _float_param(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadRequestError(f"invalid {name} {text!r}: not a number") from None


async def _read_object(
    request: web.Request, store: KindStore, namespace: str, name: str | None
) -> dict[str, Any]:
    try:
        obj = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"request body is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise BadRequestError("request body must be a JSON object")
    spec = store.spec
    obj.setdefault("apiVersion", spec.api_version)
    obj.setdefault("kind", spec.kind)
    if obj["apiVersion"] != spec.api_version or obj["kind"] != spec.kind:
        raise BadRequestError(
            f"body is {obj['apiVersion']}/{obj['kind']}, URL is {spec.api_version}/{spec.kind}"
        )
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise InvalidObjectError("metadata must be an object")
    if spec.namespaced:
        if meta.get("namespace", namespace) != namespace:
            raise BadRequestError(
                "the namespace of the object does not match the namespace on the request"
            )
        meta["namespace"] = namespace
    if name is not None and meta.get("name", name) != name:
        raise BadRequestError("the name of the object does not match the name on the URL")
    if name is not None:
        meta["name"] = name
    return obj

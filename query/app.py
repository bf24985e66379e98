"""The ASGI app: routes, auth, parameter checks and error mapping (docs/query.md).

Objects are served as the stored JSON bytes; lists splice them together. Every
route but the health probes needs ``Authorization: Bearer <token>``; a token
sees only its clusters and namespaces, and anything outside them answers exactly
like something absent.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from deltas.errors import KubedeltaError
from query import params as P
from query.auth import Scope
from query.errors import NotFoundError, QueryError, UnauthorizedError
from query.fastpath import ASGIApp, with_fast_get
from query.feed import FeedFilter
from query.service import QueryService
from query.spinnaker import ApplicationView, manifest, parse_resource_name
from query.view import ListQuery, render_list
from store.values import ClusterStatus

log = logging.getLogger(__name__)

JSON = "application/json"
_VERSION = re.compile(r"^v[0-9]{1,4}((alpha|beta)[0-9]{1,4})?$")
_REASONS = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 410: "Gone"}

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request (parameter, selector, token, timestamp)"},
    401: {"description": "Missing or unknown bearer token"},
    404: {"description": "Not found, or not visible to this token (same answer)"},
    410: {"description": "Point in time or feed position older than the kept history"},
}


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=JSON)


def _status_body(code: int, message: str) -> Response:
    """Errors look like Kubernetes ``Status`` objects."""
    return _json(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": _REASONS.get(code, "InternalError" if code >= 500 else "Error"),
            "message": message,
        },
        code,
    )


# -- auth and parameter checks ---------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="Token from the service's tokens file")


def _service(request: Request) -> QueryService:
    service: QueryService = request.app.state.service
    return service


async def authenticate(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Scope:
    return _service(request).tokens.authenticate(request.headers.get("authorization"))


def allow_params(*names: str) -> Callable[[Request], Awaitable[None]]:
    allowed = frozenset(names)

    async def check(request: Request) -> None:
        P.reject_unknown(request.query_params.keys(), allowed)

    return check


AuthScope = Annotated[Scope, Depends(authenticate)]
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
ClusterPath = Annotated[str, Path(description="Cluster name", pattern=_DNS_LABEL)]
GroupPath = Annotated[
    str,
    Path(
        description="API group; `core` for the core group",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
    ),
]
VersionPath = Annotated[
    str, Path(description="API version, e.g. v1 (informational)", pattern=_VERSION.pattern)
]
KindPath = Annotated[
    str, Path(description="Kind, e.g. Deployment", pattern=r"^[A-Za-z][A-Za-z0-9]{0,62}$")
]
NamespacePath = Annotated[
    str,
    Path(
        description="Namespace; `_` for cluster-scoped objects",
        pattern=r"^(_|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$",
    ),
]
NamePath = Annotated[
    str,
    Path(description="Object name", max_length=253, pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.:@]*)$"),
]
AtQuery = Annotated[
    str | None,
    Query(description="Point in time: Unix milliseconds or ISO-8601 (within kept history)"),
]


@dataclass(frozen=True, slots=True)
class ListParams:
    """The LIST/search query string, as received (validated in :func:`_list_query`)."""

    clusters: list[str]
    group: str | None
    kind: str | None
    namespace: str | None
    label_selector: str | None
    name_prefix: str | None
    limit: int | None
    continue_token: str | None
    count: bool
    at: str | None


async def list_params(
    labelSelector: Annotated[
        str | None, Query(description="Kubernetes label selector, e.g. `app=web,tier!=db`")
    ] = None,
    namePrefix: Annotated[str | None, Query(description="Only names starting with this")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000, description="Page size")] = None,
    continue_: Annotated[
        str | None, Query(alias="continue", description="Token from the previous page")
    ] = None,
    count: Annotated[bool, Query(description="Return {count} instead of items")] = False,
    at: AtQuery = None,
) -> ListParams:
    return ListParams([], None, None, None, labelSelector, namePrefix, limit, continue_, count, at)


_LIST_PARAMS = ("labelSelector", "namePrefix", "limit", "continue", "count", "at")
_SEARCH_PARAMS = (*_LIST_PARAMS, "cluster", "group", "kind", "namespace")


def _list_query(
    service: QueryService,
    p: ListParams,
) -> ListQuery:
    limits = service.config.limits
    return ListQuery(
        clusters=tuple(c) if (c := P.clusters_param(p.clusters, limits)) is not None else None,
        group=P.group_param(p.group),
        kind=P.kind_param(p.kind),
        namespace=P.namespace_param(p.namespace),
        name_prefix=P.name_prefix_param(p.name_prefix),
        selector=P.selector_param(p.label_selector),
        at_ms=P.at_param(p.at, _now_ms()),
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def _run_list(service: QueryService, scope: Scope, p: ListParams) -> Response:
    q = _list_query(service, p)
    service.ensure_fresh()
    if p.count:
        if p.continue_token or p.limit is not None:
            raise QueryError("count=true takes no limit or continue")
        return _json({"count": service.view.count(scope, q)})
    limit = p.limit if p.limit is not None else service.config.limits.default_limit
    result = service.view.list_page(scope, q, limit, p.continue_token)
    return Response(render_list(result.items, result.continue_token), media_type=JSON)


def _version(version: str) -> None:
    if not _VERSION.match(version):
        raise QueryError(f"version {version!r} is not an API version (e.g. v1, v1beta1)")


def _cluster_status_json(status: ClusterStatus, scope: Scope, now_ms: int) -> dict[str, Any]:
    verdict = status.last_verdict
    out: dict[str, Any] = {
        "cluster": status.cluster,
        "syncState": status.sync_state,
        "lastEventTimeMs": status.last_event_time_ms or None,
        "lastRecordTimeMs": status.last_record_time_ms or None,
        "lastCommitMs": status.last_commit_ms,
        # Producer observed -> view committed, for the newest record (clock skew aside).
        "eventLagMs": (
            max(status.last_commit_ms - status.last_event_time_ms, 0)
            if status.last_commit_ms and status.last_event_time_ms
            else None
        ),
        "sinceLastCommitMs": (
            max(now_ms - status.last_commit_ms, 0) if status.last_commit_ms else None
        ),
        "digest": {
            "checks": status.digest_checks,
            "mismatches": status.digest_mismatches,
            "lastVerdict": (
                None
                if verdict is None
                else {
                    "partition": verdict.partition,
                    "offset": verdict.offset,
                    "matches": verdict.matches,
                    **(
                        {
                            "expectedCount": verdict.expected_count,
                            "actualCount": verdict.actual_count,
                        }
                        if scope.all_namespaces
                        else {}
                    ),
                }
            ),
        },
    }
    if scope.all_namespaces:
        # Counts cover every namespace: only tokens that see them all get them.
        out["objectCount"] = status.object_count
        out["countsByKind"] = [
            {"group": g, "kind": k, "count": n}
            for (g, k), n in sorted(status.counts_by_kind.items())
        ]
        out["partitions"] = [
            {
                "partition": p.partition,
                "nextOffset": p.next_offset,
                "objectCount": p.object_count,
                "openRelists": p.open_relists,
            }
            for p in status.partitions
        ]
    return out


# -- the app ---------------------------------------------------------------------------


def create_app(service: QueryService) -> FastAPI:
    """The ASGI app over ``service`` (which the lifespan starts and stops)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="kubedelta query API",
        version="1",
        description="Multi-cluster Kubernetes objects from the kubedelta view (docs/query.md).",
        lifespan=lifespan,
        responses=_ERROR_RESPONSES,
    )
    app.state.service = service
    _install_error_handlers(app)

    @app.get("/healthz", tags=["health"], dependencies=[Depends(allow_params())])
    async def healthz() -> Response:
        return Response(b"ok", media_type="text/plain")

    @app.get("/readyz", tags=["health"], dependencies=[Depends(allow_params())])
    async def readyz() -> Response:
        ready = service.stats.count > 0
        return Response(
            b"ready" if ready else b"not ready",
            status_code=200 if ready else 503,
            media_type="text/plain",
        )

    # -- objects -------------------------------------------------------------------------

    @app.get(
        "/api/v1/clusters/{cluster}/objects/{group}/{version}/{kind}/{namespace}/{name}",
        tags=["objects"],
        summary="One object (namespace `_` for cluster-scoped kinds)",
        dependencies=[Depends(allow_params("at"))],
    )
    async def get_object(
        scope: AuthScope,
        cluster: ClusterPath,
        group: GroupPath,
        version: VersionPath,
        kind: KindPath,
        namespace: NamespacePath,
        name: NamePath,
        at: AtQuery = None,
    ) -> Response:
        _version(version)
        args = (
            P.cluster_name(cluster),
            P.group_param(group) or "",
            P.kind_param(kind) or "",
            P.namespace_param(namespace) or "",
            P.name_param(name),
        )
        at_ms = P.at_param(at, _now_ms())
        service.ensure_fresh()
        return Response(service.view.get(scope, *args, at_ms=at_ms), media_type=JSON)

    @app.get(
        "/api/v1/clusters/{cluster}/objects/{group}/{version}/{kind}/{namespace}",
        tags=["objects"],
        summary="LIST one kind in one namespace of one cluster",
        dependencies=[Depends(allow_params(*_LIST_PARAMS))],
    )
    async def list_namespace(
        scope: AuthScope,
        cluster: ClusterPath,
        group: GroupPath,
        version: VersionPath,
        kind: KindPath,
        namespace: NamespacePath,
        p: Annotated[ListParams, Depends(list_params)],
    ) -> Response:
        _version(version)
        p = ListParams([cluster], group, kind, namespace, *_tail(p))
        return _run_list(service, scope, p)

    @app.get(
        "/api/v1/clusters/{cluster}/objects/{group}/{version}/{kind}",
        tags=["objects"],
        summary="LIST one kind in one cluster",
        dependencies=[Depends(allow_params(*_LIST_PARAMS, "namespace"))],
    )
    async def list_kind(
        scope: AuthScope,
        cluster: ClusterPath,
        group: GroupPath,
        version: VersionPath,
        kind: KindPath,
        p: Annotated[ListParams, Depends(list_params)],
        namespace: Annotated[
            str | None, Query(description="Namespace; `_` = cluster-scoped")
        ] = None,
    ) -> Response:
        _version(version)
        p = ListParams([cluster], group, kind, namespace, *_tail(p))
        return _run_list(service, scope, p)

    @app.get(
        "/api/v1/objects",
        tags=["objects"],
        summary="LIST / search across clusters (label selectors use the label index)",
        dependencies=[Depends(allow_params(*_SEARCH_PARAMS))],
    )
    async def search(
        scope: AuthScope,
        p: Annotated[ListParams, Depends(list_params)],
        cluster: Annotated[
            list[str] | None, Query(description="Cluster(s); repeat or comma-separate; default all")
        ] = None,
        group: Annotated[str | None, Query(description="API group; `core` = core")] = None,
        kind: Annotated[str | None, Query(description="Kind")] = None,
        namespace: Annotated[
            str | None, Query(description="Namespace; `_` = cluster-scoped")
        ] = None,
    ) -> Response:
        p = ListParams(cluster or [], group, kind, namespace, *_tail(p))
        return _run_list(service, scope, p)

    # -- change feed ---------------------------------------------------------------------

    @app.get(
        "/api/v1/watch",
        tags=["feed"],
        summary="Change feed (Server-Sent Events), resumable with Last-Event-ID or from=",
        dependencies=[
            Depends(
                allow_params(
                    "cluster",
                    "group",
                    "kind",
                    "namespace",
                    "labelSelector",
                    "namePrefix",
                    "from",
                    "timeoutSeconds",
                )
            )
        ],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def watch(
        request: Request,
        scope: AuthScope,
        cluster: Annotated[list[str] | None, Query(description="Cluster(s)")] = None,
        group: Annotated[str | None, Query()] = None,
        kind: Annotated[str | None, Query()] = None,
        namespace: Annotated[str | None, Query()] = None,
        labelSelector: Annotated[str | None, Query()] = None,
        namePrefix: Annotated[str | None, Query()] = None,
        from_: Annotated[
            str | None,
            Query(alias="from", description="Resume after this event id (default: from now)"),
        ] = None,
        timeoutSeconds: Annotated[
            int | None, Query(ge=1, le=86_400, description="End the stream after this long")
        ] = None,
    ) -> StreamingResponse:
        limits = service.config.limits
        clusters = P.clusters_param(cluster or [], limits)
        feed_filter = FeedFilter(
            scope=scope,
            clusters=frozenset(clusters) if clusters is not None else None,
            group=P.group_param(group),
            kind=P.kind_param(kind),
            namespace=P.namespace_param(namespace),
            name_prefix=P.name_prefix_param(namePrefix),
            selector=P.selector_param(labelSelector),
        )
        header = request.headers.get("last-event-id")
        requested = P.position_param(from_ if from_ is not None else header)
        service.ensure_fresh()
        start = service.hub.start_position(requested)
        stream = service.hub.stream(
            feed_filter,
            start,
            service.config.feed_heartbeat_s,
            float(timeoutSeconds) if timeoutSeconds is not None else None,
            service.ensure_fresh,
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    # -- clusters ------------------------------------------------------------------------

    @app.get(
        "/api/v1/clusters",
        tags=["clusters"],
        summary="Clusters this token sees, with sync state and digest verdicts",
        dependencies=[Depends(allow_params())],
    )
    async def clusters(scope: AuthScope) -> Response:
        service.ensure_fresh()
        now = _now_ms()
        out = []
        for name in service.view.visible_clusters(scope, None):
            status = service.reader.cluster_status(name)
            if status is not None:
                out.append(_cluster_status_json(status, scope, now))
        return _json({"clusters": out})

    @app.get(
        "/api/v1/clusters/{cluster}/status",
        tags=["clusters"],
        summary="Sync state, lag, last digest verdict and counts of one cluster",
        dependencies=[Depends(allow_params())],
    )
    async def cluster_status(scope: AuthScope, cluster: ClusterPath) -> Response:
        P.cluster_name(cluster)
        service.ensure_fresh()
        status = service.reader.cluster_status(cluster) if scope.allows_cluster(cluster) else None
        if status is None:
            raise NotFoundError("cluster not found")
        return _json(_cluster_status_json(status, scope, _now_ms()))

    # -- Spinnaker (Clouddriver-shaped) --------------------------------------------------

    def app_view(scope: Scope, application: str) -> ApplicationView:
        if not application or len(application) > 253 or "\x00" in application:
            raise QueryError("application name must be 1-253 characters without NUL")
        service.ensure_fresh()
        return ApplicationView(application, service.view.app_objects(scope, application))

    no_params = [Depends(allow_params())]

    @app.get("/applications", tags=["spinnaker"], dependencies=no_params)
    async def applications(scope: AuthScope) -> Response:
        # Names only: clusterNames would mean gathering every application's objects;
        # /applications/{application} has them.
        service.ensure_fresh()
        return _json(
            [
                {"name": name, "attributes": {"name": name, "cloudProviders": "kubernetes"}}
                for name in service.view.applications(scope)
            ]
        )

    @app.get("/applications/{application}", tags=["spinnaker"], dependencies=no_params)
    async def application(scope: AuthScope, application: str) -> Response:
        view = app_view(scope, application)
        if not view.has_objects:
            raise NotFoundError("application not found")
        return _json(view.summary())

    @app.get("/applications/{application}/clusters", tags=["spinnaker"], dependencies=no_params)
    async def app_clusters(scope: AuthScope, application: str) -> Response:
        return _json(app_view(scope, application).cluster_names())

    @app.get(
        "/applications/{application}/clusters/{account}",
        tags=["spinnaker"],
        dependencies=no_params,
    )
    async def app_account_clusters(scope: AuthScope, application: str, account: str) -> Response:
        return _json(
            [c for c in app_view(scope, application).clusters() if c["account"] == account]
        )

    @app.get("/applications/{application}/serverGroups", tags=["spinnaker"], dependencies=no_params)
    async def server_groups(scope: AuthScope, application: str) -> Response:
        return _json(app_view(scope, application).server_groups())

    @app.get(
        "/applications/{application}/serverGroupManagers",
        tags=["spinnaker"],
        dependencies=no_params,
    )
    async def server_group_managers(scope: AuthScope, application: str) -> Response:
        return _json(app_view(scope, application).server_group_managers())

    @app.get(
        "/applications/{application}/loadBalancers", tags=["spinnaker"], dependencies=no_params
    )
    async def load_balancers(scope: AuthScope, application: str) -> Response:
        return _json(app_view(scope, application).load_balancers())

    @app.get("/applications/{application}/instances", tags=["spinnaker"], dependencies=no_params)
    async def instances(scope: AuthScope, application: str) -> Response:
        return _json(app_view(scope, application).instances())

    @app.get(
        "/manifests/{account}/{location}/{name}",
        tags=["spinnaker"],
        summary="Clouddriver-style manifest; name is '<kind> <name>', location `_` if cluster-scoped",
        dependencies=no_params,
    )
    async def get_manifest(scope: AuthScope, account: str, location: str, name: str) -> Response:
        try:
            group, kind, obj_name = parse_resource_name(name)
        except ValueError as exc:
            raise QueryError(str(exc)) from exc
        cluster = P.cluster_name(account)
        namespace = P.namespace_param(location) or ""
        service.ensure_fresh()
        obj = service.view.lookup(scope, cluster, group, kind, namespace, P.name_param(obj_name))
        app_name = obj.annotation("moniker.spinnaker.io/application")
        view = (
            ApplicationView(app_name, service.view.app_objects(scope, app_name))
            if app_name
            else None
        )
        return _json(manifest(view, obj))

    return app


def _tail(p: ListParams) -> tuple[Any, ...]:
    return (
        p.label_selector,
        p.name_prefix,
        p.limit,
        p.continue_token,
        p.count,
        p.at,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def kubedelta_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "http_status", None)
        if status is None:
            # A store or internal error we raised on purpose: the service cannot answer.
            log.warning("request %s failed: %r", request.url.path, exc)
            return _status_body(503, f"service unavailable: {exc}")
        response = _status_body(int(status), str(exc))
        if isinstance(exc, UnauthorizedError):
            response.headers["WWW-Authenticate"] = "Bearer"
        return response

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _status_body(400, "invalid request: " + "; ".join(problems))

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return _status_body(exc.status_code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error serving %s", request.url.path, exc_info=exc)
        return _status_body(500, "internal error (logged)")

    handlers: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
        KubedeltaError: kubedelta_error,
        RequestValidationError: validation_error,
        StarletteHTTPException: http_error,
        Exception: unexpected,
    }
    for exc_type, handler in handlers.items():
        app.add_exception_handler(exc_type, handler)


def create_asgi(service: QueryService) -> ASGIApp:
    """What ``kubedelta serve`` runs: the app behind the object-GET fast path."""
    return with_fast_get(create_app(service), service)


__all__ = ["create_app", "create_asgi"]

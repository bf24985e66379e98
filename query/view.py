"""Scoped queries over the store's read API: GET, LIST/search, counts, Spinnaker gathering.

Every method takes the caller's Scope and never returns what it does not allow; a
hidden object is indistinguishable from an absent one. Bodies stay bytes: a LIST
response is stored JSON spliced between a few literal bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from deltas.index_fields import owners_of
from query.auth import Scope
from query.errors import HistoryUnavailableError, NotFoundError, QueryError
from query.selectors import Operator, Requirement, Selector
from query.spinnaker import OWNER_KINDS, ViewObject
from query.tokens import PageState, TokenSigner, query_fingerprint
from store import layout
from store.reads import MAX_LIMIT as MAX_STORE_PAGE
from store.reads import ViewReads
from store.values import Item, Page

#: Levels of ownership followed from an application's objects (Deployment -> ReplicaSet -> Pod).
_OWNER_DEPTH = 3
#: Objects one Spinnaker view gathers at most (bounds memory and time of one request).
_MAX_APP_OBJECTS = 50_000


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A LIST / search / count request, normalized."""

    clusters: tuple[str, ...] | None  #: None = every cluster the scope allows
    group: str | None  #: None = any group; "" = core
    kind: str | None
    namespace: str | None  #: None = any; "" = cluster-scoped
    name_prefix: str
    selector: Selector
    at_ms: int | None  #: point-in-time LIST (None = live)

    def fingerprint(self) -> bytes:
        return query_fingerprint(
            self.clusters,
            self.group,
            self.kind,
            self.namespace,
            self.name_prefix,
            self.selector.canonical(),
            self.at_ms,
        )


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Item]
    continue_token: str | None


def not_found() -> NotFoundError:
    # One message for absent and out-of-scope objects: the answer reveals nothing.
    return NotFoundError("object not found")


def _labels_of(body: bytes) -> dict[str, str]:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def render_list(items: Sequence[Item], continue_token: str | None) -> bytes:
    """The LIST body: ``{"kind":"List",...,"items":[{"cluster":..,"object":<stored>}]}``."""
    meta = orjson.dumps({"continue": continue_token} if continue_token else {})
    parts = [b'{"kind":"List","apiVersion":"kubedelta/v1","metadata":', meta, b',"items":[']
    append = parts.append
    prefixes: dict[str, bytes] = {}
    for item in items:
        prefix = prefixes.get(item.cluster)
        if prefix is None:
            # Cluster names are DNS labels: safe to splice without escaping.
            prefix = prefixes[item.cluster] = (
                b'{"cluster":"' + item.cluster.encode() + b'","object":'
            )
        append(prefix)
        append(item.body)
        append(b"},")
    if items:
        parts[-1] = b"}"
    parts.append(b"]}")
    return b"".join(parts)


class ScopedView:
    """The read API as one token sees it. Synchronous: each call is a few RocksDB reads."""

    def __init__(
        self,
        reader: ViewReads,
        signer: TokenSigner,
        history_retention_s: int,
        max_scan_per_page: int,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._reader = reader
        self._signer = signer
        self._retention_ms = history_retention_s * 1000
        self._max_scan = max_scan_per_page
        self._max_page = MAX_STORE_PAGE
        self._clock_ms = clock_ms

    @property
    def reader(self) -> ViewReads:
        return self._reader

    # -- point reads ---------------------------------------------------------------------

    def check_history(self, at_ms: int) -> None:
        """Refuse (410) a point in time older than the kept history."""
        if self._retention_ms <= 0:
            raise HistoryUnavailableError(
                "point-in-time reads are disabled: the view keeps no history"
                " (history_retention_s = 0)"
            )
        oldest = self._clock_ms() - self._retention_ms
        if at_ms < oldest:
            raise HistoryUnavailableError(
                f"at={at_ms} is outside the kept history: the view keeps"
                f" {self._retention_ms // 1000} s, so the oldest answerable time is {oldest}"
                " (Unix ms)"
            )

    def get(
        self,
        scope: Scope,
        cluster: str,
        group: str,
        kind: str,
        namespace: str,
        name: str,
        at_ms: int | None = None,
    ) -> bytes:
        if not scope.allows(cluster, namespace):
            raise not_found()
        if at_ms is None:
            body = self._reader.get(cluster, group, kind, namespace, name)
        else:
            self.check_history(at_ms)
            entry = self._reader.get_at(cluster, group, kind, namespace, name, at_ms)
            body = entry.body if entry is not None else None
        if body is None:
            raise not_found()
        return body

    # -- LIST / search -------------------------------------------------------------------

    def visible_clusters(self, scope: Scope, requested: Sequence[str] | None) -> list[str]:
        known = self._reader.clusters()
        wanted = known if requested is None else [c for c in requested if c in set(known)]
        return scope.visible_clusters(wanted)

    def _accepts(self, scope: Scope, q: ListQuery, item: Item, by_index: bool) -> bool:
        if not scope.unrestricted and not scope.allows(item.cluster, item.namespace):
            return False
        if q.namespace is not None and item.namespace != q.namespace:
            return False
        if q.name_prefix and not item.name.startswith(q.name_prefix):
            return False
        if by_index:  # the index does not filter on these
            if q.group is not None and item.group != q.group:
                return False
            if q.kind is not None and item.kind != q.kind:
                return False
        if q.selector.empty:
            return True
        return q.selector.matches(_labels_of(item.body))

    def _fetcher(
        self, q: ListQuery, clusters: list[str]
    ) -> tuple[Callable[[bytes | None, int], Page], Callable[[Item], bytes], bool]:
        """The store call that pages through candidates, the cursor that resumes right
        after a given item, and whether it is an index scan."""
        r = self._reader
        if q.at_ms is not None:
            if len(clusters) != 1 or q.group is None or q.kind is None:
                raise QueryError(
                    "a point-in-time LIST (at=) needs exactly one cluster, a group and a kind"
                )
            cluster, group, kind = clusters[0], q.group, q.kind

            def at_page(after: bytes | None, limit: int) -> Page:
                assert q.at_ms is not None
                return r.list_at(cluster, group, kind, q.at_ms, q.namespace, after, limit)

            return at_page, _object_cursor, False
        req = q.selector.index_requirement()
        if req is None:
            prefix = q.name_prefix or None

            def scan_page(after: bytes | None, limit: int) -> Page:
                return r.list_objects(clusters, q.group, q.kind, q.namespace, prefix, after, limit)

            return scan_page, _object_cursor, False

        def index_cursor(item: Item) -> bytes:
            value = _labels_of(item.body).get(req.key, "")
            return layout.label_prefix(req.key, value) + _object_cursor(item)

        return self._index_fetcher(req, q, clusters), index_cursor, True

    def _index_fetcher(
        self, req: Requirement, q: ListQuery, clusters: list[str]
    ) -> Callable[[bytes | None, int], Page]:
        r = self._reader
        values: list[str | None] = (
            [None] if req.operator is Operator.EXISTS else [*sorted(req.values, key=layout.esc)]
        )
        prefixes = [layout.label_prefix(req.key, v) for v in values]

        def index_page(after: bytes | None, limit: int) -> Page:
            # ``in (a,b)``: walk one value's index range after the other, in key order,
            # so a single index-key cursor says where to resume.
            last = len(values) - 1
            for i, (value, prefix) in enumerate(zip(values, prefixes, strict=True)):
                end = layout.prefix_end(prefix)
                if after is not None and end is not None and after >= end:
                    continue
                start = after if after is not None and after.startswith(prefix) else None
                page = r.by_label(
                    req.key,
                    value,
                    clusters=clusters,
                    group=q.group,
                    kind=q.kind,
                    after=start,
                    limit=limit,
                )
                if page.next_cursor is not None or page.items:
                    if page.next_cursor is None:
                        # This value is done; resume at the next one.
                        return Page(page.items, end if i < last else None)
                    return page
                after = end
            return Page([], None)

        return index_page

    def list_page(
        self, scope: Scope, q: ListQuery, limit: int, continue_token: str | None
    ) -> ListResult:
        if q.at_ms is not None:
            self.check_history(q.at_ms)
        fingerprint = q.fingerprint()
        after: bytes | None = None
        if continue_token:
            after = self._signer.check(continue_token, fingerprint).position
        clusters = self.visible_clusters(scope, q.clusters)
        if not clusters:
            return ListResult([], None)
        fetch, cursor_of, by_index = self._fetcher(q, clusters)
        # Without post-filters the store's page is the answer. With them, ask for more
        # than is missing (by the acceptance seen so far) to save store round trips,
        # and cut the page after the last item kept.
        filtered = (
            by_index
            or not q.selector.empty
            or not scope.unrestricted
            or (q.at_ms is not None and bool(q.name_prefix))  # list_at has no prefix filter
        )
        items: list[Item] = []
        scanned = 0
        kept = 0
        cursor = after
        while True:
            want = limit - len(items)
            ask = want
            if filtered:
                ratio = (scanned + 1) / (kept + 1)
                ask = max(min(int(want * ratio * 1.2) + 16, self._max_page), want)
            page = fetch(cursor, ask)
            scanned += len(page.items)
            cursor = page.next_cursor
            if not filtered:  # the store already applied every filter there is
                items.extend(page.items)
                if cursor is None or len(items) >= limit:
                    break
                continue
            for index, item in enumerate(page.items):
                if not self._accepts(scope, q, item, by_index):
                    continue
                kept += 1
                items.append(item)
                if len(items) == limit:
                    if index + 1 < len(page.items):
                        cursor = cursor_of(item)  # more fetched than kept: resume after it
                    break
            if cursor is None or len(items) >= limit or scanned >= self._max_scan:
                break
        token = (
            self._signer.issue(PageState(fingerprint, cursor, q.at_ms))
            if cursor is not None
            else None
        )
        return ListResult(items, token)

    def count(self, scope: Scope, q: ListQuery) -> int:
        clusters = self.visible_clusters(scope, q.clusters)
        if not clusters:
            return 0
        if q.at_ms is None and q.selector.empty and not q.name_prefix:
            if scope.all_namespaces or (
                q.namespace is not None and scope.allows_namespace(q.namespace)
            ):
                return self._reader.count(clusters, q.group, q.kind, q.namespace)
            if q.namespace is not None:
                return 0
        if q.at_ms is not None:
            self.check_history(q.at_ms)
        fetch, _, by_index = self._fetcher(q, clusters)
        total = 0
        cursor: bytes | None = None
        while True:
            page = fetch(cursor, self._max_page)
            total += sum(1 for i in page.items if self._accepts(scope, q, i, by_index))
            cursor = page.next_cursor
            if cursor is None:
                return total

    # -- Spinnaker -----------------------------------------------------------------------

    def applications(self, scope: Scope) -> list[str]:
        """Application names with at least one object in scope, sorted."""
        clusters = self.visible_clusters(scope, None)
        if not clusters:
            return []
        names = self._reader.applications(clusters)
        if scope.all_namespaces:
            return names
        return [app for app in names if self._app_visible(scope, app, clusters)]

    def _app_visible(self, scope: Scope, app: str, clusters: list[str]) -> bool:
        """A namespace-limited token sees the app if any of its objects is in scope."""
        cursor: bytes | None = None
        while True:
            page = self._reader.by_app(app, clusters=clusters, after=cursor, limit=2000)
            if any(scope.allows(i.cluster, i.namespace) for i in page.items):
                return True
            cursor = page.next_cursor
            if cursor is None:
                return False

    # -- Spinnaker (gathering) ---------------------------------------------------------------------

    def _all_pages(self, fetch: Callable[[bytes | None], Page]) -> Iterator[Item]:
        cursor: bytes | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            cursor = page.next_cursor
            if cursor is None:
                return

    def app_objects(self, scope: Scope, app: str) -> list[ViewObject]:
        """An application's objects in scope, plus what they own (ReplicaSets, Pods)."""
        clusters = self.visible_clusters(scope, None)
        if not clusters:
            return []
        r = self._reader
        found: dict[tuple[str, str, str, str, str], ViewObject] = {}

        def add(items: Iterator[Item]) -> list[ViewObject]:
            added = []
            for item in items:
                if not scope.allows(item.cluster, item.namespace):
                    continue
                key = (item.cluster, item.group, item.kind, item.namespace, item.name)
                if key in found:
                    continue
                obj = view_object(item)
                if obj is None:
                    continue
                found[key] = obj
                added.append(obj)
                if len(found) >= _MAX_APP_OBJECTS:
                    raise QueryError(
                        f"application {app!r} has more than {_MAX_APP_OBJECTS} objects in scope;"
                        " query it with LIST and a label selector instead"
                    )
            return added

        frontier = add(
            self._all_pages(lambda c: r.by_app(app, clusters=clusters, after=c, limit=2000))
        )
        for _ in range(_OWNER_DEPTH):
            owners = [o for o in frontier if o.gk in OWNER_KINDS and o.uid]
            frontier = []
            for owner in owners:
                frontier.extend(
                    add(
                        self._all_pages(
                            lambda c, o=owner: r.by_owner(o.cluster, o.uid, after=c, limit=2000)  # type: ignore[misc]
                        )
                    )
                )
        return list(found.values())

    def lookup(
        self, scope: Scope, cluster: str, group: str, kind: str, namespace: str, name: str
    ) -> ViewObject:
        body = self.get(scope, cluster, group, kind, namespace, name)
        obj = view_object(Item(cluster, group, kind, namespace, name, body))
        if obj is None:
            raise not_found()
        return obj


def _object_cursor(item: Item) -> bytes:
    return layout.object_key(item.cluster, item.group, item.kind, item.namespace, item.name)


def view_object(item: Item) -> ViewObject | None:
    """Decode an item for the Spinnaker views (they read fields deep in the body)."""
    try:
        body: Any = orjson.loads(item.body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict):
        return None
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    api_version = body.get("apiVersion")
    version = api_version.rpartition("/")[2] if isinstance(api_version, str) else ""
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return ViewObject(
        cluster=item.cluster,
        group=item.group,
        version=version,
        kind=item.kind,
        namespace=item.namespace,
        name=item.name,
        uid=uid if isinstance(uid, str) else "",
        owners=owners_of(body),
        body=body,
    )

"""One simulated cluster: its objects, its watch history, its open watches, its fault knobs.

Memory layout, chosen for 1M objects in one process: each object is one
``Record`` tuple (compact JSON bytes without ``kind``/``apiVersion``, its counter
resourceVersion). Tuples of atoms are untracked by the garbage collector, so a
million of them cost full collections nothing; the bytes are copied to their exact
size because orjson's output keeps its over-allocated buffer (3x RSS otherwise).
``kind``/``apiVersion`` are spliced in front of the bytes only when an object
is served where the real server includes them (watch events, GETs, custom
resource lists). The watch history is one bounded window per cluster, split
into per-kind deques so a watch only scans events of its own kind.

Everything here runs on the event loop thread; nothing blocks.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import enum
import itertools
import random
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from simulator import kinds, splice
from simulator.errors import (
    AlreadyExistsError,
    BadRequestError,
    ConflictError,
    InvalidObjectError,
    ObjectNotFoundError,
    ResourceExpiredError,
    ResourceVersionTooLargeError,
    UnknownKindError,
)
from simulator.generator import below, format_time, uuid4_text
from simulator.kinds import KindSpec
from simulator.resource_version import decode_rv, encode_rv
from simulator.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]

ADDED = b"ADDED"
MODIFIED = b"MODIFIED"
DELETED = b"DELETED"

#: Annotation on the BOOKMARK that ends the initial events of a sendInitialEvents watch.
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


#: One stored object: (compact JSON without kind/apiVersion, starting with
#: b'{"metadata":'; its resourceVersion counter). Immutable: updates store a new one,
#: so history and LIST snapshots can keep old ones.
Record = tuple[bytes, int]
BODY: Final = 0
RV: Final = 1


def compact(raw: bytes) -> bytes:
    """A copy of exactly ``len(raw)`` bytes (orjson's result holds a larger buffer)."""
    return memoryview(raw).tobytes()


class _Event:
    """One change in the watch history."""

    __slots__ = ("body", "key", "namespace", "prev", "rv", "type")

    def __init__(
        self, rv: int, type_: bytes, key: str, namespace: str, body: bytes, prev: Record | None
    ) -> None:
        self.rv = rv
        self.type = type_
        self.key = key
        self.namespace = namespace
        self.body = body  #: the object after the change (for DELETED: last state, new rv)
        self.prev = prev  #: the record before the change; None for ADDED


class WatchEnd(enum.Enum):
    """Why an open watch must stop (set by fault knobs and CRD removal)."""

    EXPIRED = "expired"  #: send an ERROR 410 event, then close
    DROP = "drop"  #: cut the connection without a clean end
    CLOSE = "close"  #: end the stream cleanly (CRD removed, server stopping)


class WatchHandle:
    """Per-watch state: small, because 1,000 clusters x a dozen kinds are open at once."""

    __slots__ = ("cursor", "end", "fields", "labels", "namespace", "store", "waiter")

    def __init__(
        self, store: KindStore, namespace: str, labels: LabelSelector, fields: FieldSelector
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.labels = labels
        self.fields = fields
        self.cursor = 0  #: every event of the kind with rv <= cursor has been handled
        self.end: WatchEnd | None = None
        self.waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def has_pending(self) -> bool:
        log = self.store.log
        return self.end is not None or (bool(log) and log[-1].rv > self.cursor)

    async def wait(self, timeout_s: float) -> None:
        """Until an event of the kind arrives, the watch must end, or ``timeout_s`` passes."""
        if self.has_pending() or timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.waiter = waiter
        timer = loop.call_later(timeout_s, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def take(self, now_rv: int) -> list[bytes]:
        """Watch-event lines for the events after ``cursor``; advances ``cursor`` to ``now_rv``.

        Raises ResourceExpiredError when events after ``cursor`` left the history.
        """
        store = self.store
        if self.cursor < store.evicted_upto:
            raise ResourceExpiredError(
                f"too old resource version: {encode_rv(self.cursor)} ({encode_rv(store.evicted_upto)})"
            )
        pending: list[_Event] = []
        for event in reversed(store.log):
            if event.rv <= self.cursor:
                break
            pending.append(event)
        self.cursor = now_rv
        lines: list[bytes] = []
        filtered = bool(self.namespace) or not self.labels.empty or not self.fields.empty
        for event in reversed(pending):
            if filtered:
                line = self._filtered_line(event)
                if line is not None:
                    lines.append(line)
            else:
                lines.append(store.event_line(event.type, event.body))
        return lines

    def _filtered_line(self, event: _Event) -> bytes | None:
        if self.namespace and event.namespace != self.namespace:
            return None
        new_match = self._matches(event.key, event.namespace, event.body)
        if event.type is MODIFIED and event.prev is not None and not self.labels.empty:
            # Like the real server: an object entering the selector is ADDED, leaving is DELETED.
            old_match = self._matches(event.key, event.namespace, event.prev[BODY])
            if new_match and not old_match:
                return self.store.event_line(ADDED, event.body)
            if old_match and not new_match:
                return self.store.event_line(DELETED, event.body)
        if not new_match:
            return None
        return self.store.event_line(event.type, event.body)

    def _matches(self, key: str, namespace: str, body: bytes) -> bool:
        if not self.fields.empty and not self.fields.matches(namespace, key.rsplit("/", 1)[-1]):
            return False
        return self.labels.empty or self.labels.matches(labels_of(body))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def labels_of(body: bytes) -> dict[str, str]:
    labels = orjson.loads(body).get("metadata", {}).get("labels") or {}
    return labels if isinstance(labels, dict) else {}


class KindStore:
    """The objects and watch history of one kind in one cluster."""

    __slots__ = (
        "_sorted_keys",
        "evicted_upto",
        "keys",
        "log",
        "object_prefix",
        "records",
        "spec",
        "status_splices",
        "watches",
    )

    def __init__(self, spec: KindSpec, created_rv: int) -> None:
        self.spec = spec
        #: Spliced before body[1:] to serve an object with kind/apiVersion.
        self.object_prefix = (
            orjson.dumps({"kind": spec.kind, "apiVersion": spec.api_version})[:-1] + b","
        )
        self.records: dict[str, Record] = {}
        #: Where the next status write changes an object whose last write was one (valid
        #: while its record holds that very body): no decode of its metadata again.
        self.status_splices: dict[str, splice.StatusSplice] = {}
        #: Keys for O(1) random picks; deleted keys stay until the list is compacted.
        self.keys: list[str] = []
        self._sorted_keys: list[str] | None = None
        self.log: deque[_Event] = deque()
        #: rv of the newest event dropped from ``log``: resuming below it is 410 Expired.
        self.evicted_upto = created_rv
        self.watches: set[WatchHandle] = set()

    # -- serving ---------------------------------------------------------------------------
    def full_object(self, body: bytes) -> bytes:
        return self.object_prefix + body[1:]

    def list_item(self, body: bytes) -> bytes:
        """List items of built-in kinds omit kind/apiVersion, like the real server."""
        return self.object_prefix + body[1:] if self.spec.unstructured else body

    def event_line(self, type_: bytes, body: bytes) -> bytes:
        # One join: chained + copies the few KiB of the object once per operand.
        return b"".join((b'{"type":"', type_, b'","object":', self.object_prefix, body[1:], b"}\n"))

    def bookmark_line(self, rv: int, initial_events_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": encode_rv(rv)}
        if not self.spec.unstructured:
            meta["creationTimestamp"] = None
        if initial_events_end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.spec.kind, "apiVersion": self.spec.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    def sorted_keys(self) -> list[str]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.records)
        return self._sorted_keys

    def key(self, namespace: str, name: str) -> str:
        return f"{namespace}/{name}" if self.spec.namespaced else name

    # -- mutation (ClusterState calls these, then records the event) -----------------------
    def insert(self, key: str, body: bytes, rv: int) -> Record:
        record = (body, rv)
        self.keys.append(key)
        self.records[key] = record
        self._sorted_keys = None
        return record

    def replace(self, key: str, body: bytes, rv: int) -> Record:
        record = (body, rv)
        self.records[key] = record
        self.status_splices.pop(key, None)
        return record

    def remove(self, key: str) -> Record:
        record = self.records.pop(key)
        self.status_splices.pop(key, None)
        if len(self.keys) > 2 * len(self.records) + 64:
            self.keys = list(self.records)  # drop deleted and duplicate keys
        self._sorted_keys = None
        return record

    def random_key(self, rng: random.Random) -> str | None:
        """A uniformly chosen live key (retrying past deleted ones), or None."""
        keys = self.keys
        while self.records:
            key = keys[below(rng, len(keys))]
            if key in self.records:
                return key
        return None


@dataclass(slots=True)
class _ListSnapshot:
    """The items of a paginated LIST, frozen at its first page."""

    store: KindStore
    namespace: str
    rv: int
    bodies: list[bytes]
    filtered: bool  #: selectors applied: remainingItemCount is omitted, like the real server


@dataclass(frozen=True, slots=True)
class ListPage:
    """One LIST response, ready to render."""

    store: KindStore
    items: list[bytes]  #: item JSON as it goes into ``items``
    rv: int
    continue_token: str | None
    remaining: int | None


@dataclass(slots=True)
class FaultState:
    """Per-cluster failure injection, consumed one request at a time."""

    throttle_left: int = 0
    fail_left: int = 0
    fail_status: int = 503
    latency_ms: float = 0.0


@dataclass(slots=True)
class ClusterCounters:
    """What ``/_sim/stats`` reports per cluster."""

    requests: int = 0
    lists: int = 0
    watches_opened: int = 0
    events: int = 0
    faults_served: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ClusterState:
    """The API state of one simulated cluster. See the module docstring for the layout."""

    def __init__(
        self,
        name: str,
        *,
        history_size: int,
        list_snapshots: int,
        rng: random.Random,
    ) -> None:
        self.name = name
        self.history_size = history_size
        self._list_snapshots_max = list_snapshots
        self._rng = rng
        self._counter = 0
        self._kinds: dict[tuple[str, str], KindStore] = {}
        self._by_plural: dict[tuple[str, str, str], KindStore] = {}
        #: Kind store of each event in the cluster-wide window, oldest first.
        self._history: deque[KindStore] = deque()
        #: Continue tokens older than this are 410 Expired (set by expire_history).
        self._compacted_upto = 0
        self._snapshots: OrderedDict[int, _ListSnapshot] = OrderedDict()
        self._snapshot_ids = itertools.count(1)
        self.faults = FaultState()
        self.counters = ClusterCounters()
        for spec in kinds.BUILTIN_KINDS:
            self._register(spec)

    # == kinds ==============================================================================
    def _register(self, spec: KindSpec) -> KindStore:
        store = KindStore(spec, self._counter)
        self._kinds[(spec.group, spec.kind)] = store
        self._by_plural[(spec.group, spec.version, spec.plural)] = store
        return store

    def _unregister(self, store: KindStore) -> None:
        spec = store.spec
        self._kinds.pop((spec.group, spec.kind), None)
        self._by_plural.pop((spec.group, spec.version, spec.plural), None)
        for watch in list(store.watches):
            watch.end = WatchEnd.CLOSE
            watch.wake()
        store.records.clear()
        store.keys.clear()
        store.log.clear()
        for key in [k for k, snap in self._snapshots.items() if snap.store is store]:
            del self._snapshots[key]

    def kind_specs(self) -> list[KindSpec]:
        """The kinds this cluster serves now (built-ins first, then CRDs)."""
        return [store.spec for store in self._kinds.values()]

    def store_for(self, group: str, kind: str) -> KindStore:
        try:
            return self._kinds[(group, kind)]
        except KeyError:
            raise UnknownKindError(f"no kind {kind!r} in group {group!r}") from None

    def store_for_resource(self, group: str, version: str, plural: str) -> KindStore:
        try:
            return self._by_plural[(group, version, plural)]
        except KeyError:
            raise UnknownKindError("the server could not find the requested resource") from None

    def _store_for_object(self, obj: Obj) -> KindStore:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            raise InvalidObjectError("object needs apiVersion and kind")
        group, _, version = api_version.rpartition("/")
        store = self.store_for(group, kind)
        if store.spec.version != version:
            raise UnknownKindError(f"no kind {kind!r} in {api_version!r}")
        return store

    def add_crd(
        self,
        group: str = "example.com",
        version: str = "v1",
        kind: str = "Widget",
        plural: str = "widgets",
        scope: str = "Namespaced",
    ) -> Obj:
        """Install a CustomResourceDefinition: the kind appears in discovery, list/watch work."""
        spec = KindSpec(
            group,
            version,
            kind,
            plural,
            namespaced=scope == "Namespaced",
            subresources=(kinds.Subresource("status"),),
            unstructured=True,
        )
        return self.create(kinds.crd_object(spec))

    def remove_crd(self, group: str, kind: str) -> None:
        """Delete the CRD of ``group``/``kind``: it leaves discovery, its objects vanish,
        open watches of it end, and CRD watchers see DELETED."""
        store = self.store_for(group, kind)
        if not store.spec.unstructured:
            raise UnknownKindError(f"{kind!r} in {group!r} is not a custom resource")
        self.delete(
            kinds.CUSTOM_RESOURCE_DEFINITION.group,
            kinds.CUSTOM_RESOURCE_DEFINITION.kind,
            "",
            f"{store.spec.plural}.{group}",
        )

    def _crd_created(self, crd: Obj) -> None:
        try:
            spec = kinds.kind_from_crd(crd)
        except (KeyError, TypeError, IndexError, StopIteration, AttributeError) as exc:
            raise InvalidObjectError(f"invalid CustomResourceDefinition: {exc!r}") from exc
        expected = f"{spec.plural}.{spec.group}"
        if crd["metadata"].get("name") != expected:
            raise InvalidObjectError(f"CustomResourceDefinition name must be {expected!r}")
        if (spec.group, spec.kind) in self._kinds:
            raise AlreadyExistsError(f"kind {spec.kind!r} in {spec.group!r} already exists")
        self._register(spec)

    def _crd_deleted(self, crd_body: bytes) -> None:
        spec = kinds.kind_from_crd(orjson.loads(crd_body))
        store = self._kinds.get((spec.group, spec.kind))
        if store is not None and store.spec.unstructured:
            self._unregister(store)

    # == resource versions and history =======================================================
    @property
    def current_rv(self) -> int:
        """The newest resourceVersion, as the server-internal counter."""
        return self._counter

    def current_resource_version(self) -> str:
        return encode_rv(self._counter)

    def _next_rv(self) -> int:
        self._counter += 1
        return self._counter

    def _record_event(
        self,
        store: KindStore,
        type_: bytes,
        key: str,
        namespace: str,
        body: bytes,
        prev: Record | None,
        rv: int,
    ) -> None:
        store.log.append(_Event(rv, type_, key, namespace, body, prev))
        history = self._history
        history.append(store)
        if len(history) > self.history_size:
            oldest_store = history.popleft()
            if oldest_store.log:  # empty when its CRD was removed meanwhile
                store_evicted = oldest_store.log.popleft()
                oldest_store.evicted_upto = store_evicted.rv
        self.counters.events += 1
        for watch in store.watches:
            watch.wake()

    def expire_history(self) -> None:
        """Forget all history, like an etcd compaction: resuming a watch from any older
        resourceVersion gets ERROR 410, and continue tokens of open lists expire."""
        now = self._counter
        for store in self._kinds.values():
            store.log.clear()
            store.evicted_upto = now
        self._history.clear()
        self._compacted_upto = now
        self._snapshots.clear()

    # == objects =============================================================================
    def _encode(self, store: KindStore, obj: Obj, metadata: Obj) -> bytes:
        body: Obj = {"metadata": metadata}
        for key, value in obj.items():
            if key not in ("kind", "apiVersion", "metadata"):
                body[key] = value
        if store.spec is kinds.SECRET:
            _fold_string_data(body)
        return compact(orjson.dumps(body))

    def _identity(self, store: KindStore, meta: Obj) -> tuple[str, str]:
        name = meta.get("name")
        if not name:
            generate = meta.get("generateName")
            if not generate:
                raise InvalidObjectError("metadata.name or metadata.generateName is required")
            name = f"{generate}{''.join(self._rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
        if not isinstance(name, str):
            raise InvalidObjectError("metadata.name must be a string")
        namespace = meta.get("namespace") or ""
        if store.spec.namespaced:
            namespace = namespace or "default"
        elif namespace:
            raise InvalidObjectError(f"{store.spec.kind} is cluster-scoped: no metadata.namespace")
        return namespace, name

    def _create(self, obj: Obj, *, emit: bool = True) -> tuple[KindStore, Record]:
        store = self._store_for_object(obj)
        meta = dict(obj.get("metadata") or {})
        namespace, name = self._identity(store, meta)
        key = store.key(namespace, name)
        if key in store.records:
            raise AlreadyExistsError(f'{store.spec.plural} "{name}" already exists')
        meta["name"] = name
        if store.spec.namespaced:
            meta["namespace"] = namespace
        # Drawn even when the client set a uid: the server's later names stay the same per seed.
        uid_bits = self._rng.getrandbits(128)
        if "uid" not in meta:
            meta["uid"] = uuid4_text(uid_bits)
        if "creationTimestamp" not in meta:
            meta["creationTimestamp"] = format_time(time.time())
        if store.spec is kinds.CUSTOM_RESOURCE_DEFINITION:
            obj = _with_crd_status(obj)
            self._crd_created({**obj, "metadata": meta})
        rv = self._next_rv()
        meta["resourceVersion"] = encode_rv(rv)
        body = self._encode(store, obj, _ordered_meta(meta))
        record = store.insert(key, body, rv)
        if emit:
            self._record_event(store, ADDED, key, namespace, body, None, rv)
        return store, record

    def _update(self, obj: Obj) -> tuple[KindStore, Record]:
        store = self._store_for_object(obj)
        meta = dict(obj.get("metadata") or {})
        namespace, name = self._identity(store, meta)
        key = store.key(namespace, name)
        old = store.records.get(key)
        if old is None:
            raise ObjectNotFoundError(f'{store.spec.plural} "{name}" not found')
        given_rv = meta.get("resourceVersion")
        if given_rv and given_rv != encode_rv(old[RV]):
            raise ConflictError(
                f'Operation cannot be fulfilled on {store.spec.plural} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again"
            )
        if "uid" not in meta or "creationTimestamp" not in meta:
            # Immutable fields the client left out come from the stored object (the
            # common churn path passes them through, so this decode is rare).
            old_meta = orjson.loads(old[BODY])["metadata"]
            for kept in ("uid", "creationTimestamp"):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
        if store.spec.namespaced:
            meta["namespace"] = namespace
        rv = self._next_rv()
        meta["resourceVersion"] = encode_rv(rv)
        body = self._encode(store, obj, _ordered_meta(meta))
        record = store.replace(key, body, rv)
        self._record_event(store, MODIFIED, key, namespace, body, old, rv)
        return store, record

    def create(self, obj: Obj) -> Obj:
        """Store a new object (assigning uid, resourceVersion, creationTimestamp) and emit
        ADDED. Creating a CustomResourceDefinition also serves its kind."""
        store, record = self._create(obj)
        return _decode(store.full_object(record[BODY]))

    def update(self, obj: Obj) -> Obj:
        """Replace an existing object with a new resourceVersion and emit MODIFIED.
        A ``metadata.resourceVersion`` other than the stored one is a ConflictError."""
        store, record = self._update(obj)
        return _decode(store.full_object(record[BODY]))

    def create_quietly(self, obj: Obj) -> None:
        """:meth:`create` without decoding the result (churn's fast path)."""
        self._create(obj)

    def update_quietly(self, obj: Obj) -> None:
        """:meth:`update` without decoding the result (churn's fast path)."""
        self._update(obj)

    def update_random_status(
        self,
        group: str,
        kind: str,
        rng: random.Random,
        change: Callable[[Obj], object],
        manager_time: str,
    ) -> bool:
        """A status-subresource write to a uniformly chosen object of the kind: ``change``
        edits its ``status`` in place, managedFields entries of the status subresource get
        ``manager_time``, MODIFIED is emitted. False if the kind has no objects.

        Same result as decoding the object, editing it and :meth:`update`, but only the
        metadata and status are decoded: the spec stays bytes (churn's commonest change)."""
        picked = self._random_key(group, kind, rng)
        if picked is None:
            return False
        store, key = picked
        old = store.records[key]
        cached = store.status_splices.get(key)
        if cached is not None and cached.body is old[BODY]:
            # Its last write was one of these: the positions are known, nothing to prove.
            status = cached.status()
            change(status)
            rv = self._next_rv()
            fresh = cached.write(encode_rv(rv), manager_time, status)
            store.replace(key, fresh.body, rv)
            store.status_splices[key] = fresh
            # The key holds the namespace the create filled in (see _replace_parts).
            namespace = key.partition("/")[0] if store.spec.namespaced else ""
            self._record_event(store, MODIFIED, key, namespace, fresh.body, old, rv)
            return True
        parts = splice.split_status(old[BODY])
        if parts is None:
            obj = _decode(store.full_object(old[BODY]))
            change(obj.setdefault("status", {}))
            _touch_status_managers(obj.get("metadata", {}), manager_time)
            self._update(obj)
            return True
        change(parts.status)
        marked = _touch_status_managers(parts.metadata, splice.time_mark(len(manager_time)))
        rv = self._next_rv()
        rv_text = encode_rv(rv)
        parts.metadata["resourceVersion"] = rv_text
        body, learned = splice.join_status_marked(parts, rv_text, manager_time, marked)
        store.replace(key, body, rv)
        if learned is not None:
            store.status_splices[key] = learned
        namespace = parts.metadata.get("namespace", "") if store.spec.namespaced else ""
        self._record_event(store, MODIFIED, key, namespace, body, old, rv)
        return True

    def _replace_parts(
        self, store: KindStore, key: str, old: Record, parts: splice.StatusParts
    ) -> None:
        """:meth:`_update`'s store and emit for an object edited as split parts."""
        rv = self._next_rv()
        parts.metadata["resourceVersion"] = encode_rv(rv)
        body = splice.join_status(parts)  # joined at its exact size: no compact() copy
        store.replace(key, body, rv)
        # What _identity gives for a stored object (create filled the namespace in).
        namespace = parts.metadata.get("namespace", "") if store.spec.namespaced else ""
        self._record_event(store, MODIFIED, key, namespace, body, old, rv)

    def update_scale(
        self,
        group: str,
        kind: str,
        namespace: str,
        name: str,
        change: Callable[[Obj, int, Obj], int],
    ) -> None:
        """Set a workload's ``spec.replicas`` and emit MODIFIED: ``change(metadata, replicas,
        status)`` gets the current count (1 if unset), edits metadata and status in place
        and returns the new count. ObjectNotFoundError if the object does not exist.

        Same result as decoding the object, editing it and :meth:`update`, but the spec
        (the Pod template: most of a workload) stays bytes when its layout allows."""
        store = self.store_for(group, kind)
        key = store.key(namespace, name)
        old = store.records.get(key)
        if old is None:
            raise ObjectNotFoundError(f'{store.spec.plural} "{name}" not found')
        parts = splice.split_status(old[BODY])
        found = None if parts is None else splice.spec_replicas(parts.middle)
        if parts is None or found is None:
            obj = _decode(store.full_object(old[BODY]))
            spec = obj["spec"]
            replicas = int(spec.get("replicas", 1))
            spec["replicas"] = change(obj["metadata"], replicas, obj.setdefault("status", {}))
            self._update(obj)
            return
        replicas, end = found
        replicas = change(parts.metadata, replicas, parts.status)
        parts = parts._replace(
            # As _update: a field the change added (generation) moves to its place.
            metadata=_ordered_meta(parts.metadata),
            middle=splice.with_spec_replicas(parts.middle, end, replicas),
        )
        self._replace_parts(store, key, old, parts)

    def delete(self, group: str, kind: str, namespace: str, name: str) -> None:
        """Remove an object and emit DELETED carrying its last state with a new resourceVersion."""
        store = self.store_for(group, kind)
        key = store.key(namespace, name)
        if key not in store.records:
            raise ObjectNotFoundError(f'{store.spec.plural} "{name}" not found')
        old = store.remove(key)
        rv = self._next_rv()
        body = splice.with_resource_version(old[BODY], encode_rv(old[RV]), encode_rv(rv))
        if body is None:
            last = orjson.loads(old[BODY])
            last["metadata"]["resourceVersion"] = encode_rv(rv)
            body = compact(orjson.dumps(last))
        self._record_event(
            store, DELETED, key, namespace if store.spec.namespaced else "", body, old, rv
        )
        if store.spec is kinds.CUSTOM_RESOURCE_DEFINITION:
            self._crd_deleted(old[BODY])

    def get(self, group: str, kind: str, namespace: str, name: str) -> Obj | None:
        """The object with kind/apiVersion, or None."""
        try:
            store = self.store_for(group, kind)
        except UnknownKindError:
            return None
        record = store.records.get(store.key(namespace, name))
        return None if record is None else _decode(store.full_object(record[BODY]))

    def exists(self, group: str, kind: str, namespace: str, name: str) -> bool:
        """Whether the object exists (``get`` without decoding it)."""
        store = self._kinds.get((group, kind))
        return store is not None and store.key(namespace, name) in store.records

    def get_bytes(self, store: KindStore, namespace: str, name: str) -> bytes:
        """The object as the API serves it on GET (ObjectNotFoundError if absent)."""
        record = store.records.get(store.key(namespace, name))
        if record is None:
            raise ObjectNotFoundError(f'{store.spec.plural} "{name}" not found')
        return store.full_object(record[BODY])

    def objects(self) -> Iterator[Obj]:
        """Every current object, decoded, with kind/apiVersion (for test comparisons)."""
        for store in list(self._kinds.values()):
            for record in list(store.records.values()):
                yield _decode(store.full_object(record[BODY]))

    def count(self) -> int:
        return sum(len(store.records) for store in self._kinds.values())

    def _random_key(
        self, group: str, kind: str, rng: random.Random
    ) -> tuple[KindStore, str] | None:
        store = self._kinds.get((group, kind))
        if store is None:
            return None
        key = store.random_key(rng)
        return None if key is None else (store, key)

    def random_object(self, group: str, kind: str, rng: random.Random) -> Obj | None:
        """A uniformly chosen object of the kind (decoded), or None if there is none."""
        picked = self._random_key(group, kind, rng)
        if picked is None:
            return None
        store, key = picked
        return _decode(store.full_object(store.records[key][BODY]))

    def random_identity(self, group: str, kind: str, rng: random.Random) -> tuple[str, str] | None:
        """(namespace, name) of a uniformly chosen object of the kind, without decoding
        it (the churn often needs only a name; decoding was a quarter of its CPU)."""
        picked = self._random_key(group, kind, rng)
        if picked is None:
            return None
        store, key = picked
        if not store.spec.namespaced:
            return "", key
        namespace, _, name = key.partition("/")
        return namespace, name

    def load(self, objects: Iterable[Obj]) -> int:
        """Bulk-create the initial population without watch events; the history then starts
        after it, so resuming from before the load is 410 (as from a compacted etcd)."""
        loaded = 0
        for obj in objects:
            self._create(obj, emit=False)
            loaded += 1
        for store in self._kinds.values():
            store.evicted_upto = self._counter
        return loaded

    # == LIST ================================================================================
    def list_page(
        self,
        store: KindStore,
        namespace: str,
        labels: LabelSelector,
        fields: FieldSelector,
        *,
        limit: int,
        continue_token: str,
        resource_version: str,
        resource_version_match: str,
    ) -> ListPage:
        """One LIST response with the real server's resourceVersion/limit/continue semantics.

        - continue: the next page of the snapshot taken by the first page (410 once expired).
        - rv "" (most recent) or NotOlderThan: current state, paginated by ``limit``.
        - rv "0": current state, and ``limit`` is ignored as by the real watch cache.
        - Exact (or legacy rv + limit): state at that rv, rebuilt from the watch history.
        """
        self.counters.lists += 1
        if continue_token:
            if resource_version or resource_version_match:
                raise BadRequestError(
                    "specifying resource version is not allowed when using continue"
                )
            snap_id, offset, rv = _decode_continue(continue_token)
            if rv < self._compacted_upto:
                raise ResourceExpiredError(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            snapshot = self._snapshots.get(snap_id)
            if snapshot is None or snapshot.rv != rv:
                raise ResourceExpiredError(
                    "The provided continue parameter is too old to display a consistent list result."
                )
            if snapshot.store is not store or snapshot.namespace != namespace:
                raise BadRequestError("continue token does not match this request")
            self._snapshots.move_to_end(snap_id)
            return self._page(snap_id, snapshot, offset, limit)

        at_rv = self._list_resource_version(resource_version, resource_version_match, limit)
        if resource_version == "0":
            limit = 0
        bodies = self._select(store, namespace, labels, fields, at_rv)
        snapshot = _ListSnapshot(
            store,
            namespace,
            at_rv if at_rv is not None else self._counter,
            bodies,
            filtered=not labels.empty or not fields.empty,
        )
        if limit <= 0 or len(bodies) <= limit:
            return ListPage(store, [store.list_item(b) for b in bodies], snapshot.rv, None, None)
        snap_id = next(self._snapshot_ids)
        self._snapshots[snap_id] = snapshot
        while len(self._snapshots) > self._list_snapshots_max:
            self._snapshots.popitem(last=False)
        return self._page(snap_id, snapshot, 0, limit)

    def _list_resource_version(self, rv_text: str, match: str, limit: int) -> int | None:
        """The rv to list at: None = current state."""
        if match not in ("", "NotOlderThan", "Exact"):
            raise BadRequestError(f"unsupported resourceVersionMatch {match!r}")
        if not rv_text:
            if match:
                raise BadRequestError(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided"
                )
            return None
        if rv_text == "0":
            if match == "Exact":
                raise BadRequestError(
                    'resourceVersionMatch "Exact" is forbidden for resourceVersion "0"'
                )
            return None
        rv = decode_rv(rv_text)
        if rv > self._counter:
            raise ResourceVersionTooLargeError(
                f"Too large resource version: {rv_text}, current: {encode_rv(self._counter)}"
            )
        exact = match == "Exact" or (not match and limit > 0)
        return rv if exact else None

    def _select(
        self,
        store: KindStore,
        namespace: str,
        labels: LabelSelector,
        fields: FieldSelector,
        at_rv: int | None,
    ) -> list[bytes]:
        if at_rv is not None and at_rv < store.evicted_upto:
            raise ResourceExpiredError(
                f"too old resource version: {encode_rv(at_rv)} ({encode_rv(store.evicted_upto)})"
            )
        if at_rv is None or not (store.log and store.log[-1].rv > at_rv):
            records = store.records
            keys = store.sorted_keys()
        else:
            records = dict(store.records)
            for event in reversed(store.log):  # undo newer changes
                if event.rv <= at_rv:
                    break
                if event.prev is None:
                    records.pop(event.key, None)
                else:
                    records[event.key] = event.prev
            keys = sorted(records)
        if namespace:
            low = bisect.bisect_left(keys, namespace + "/")
            high = bisect.bisect_left(keys, namespace + "0")  # "0" sorts right after "/"
            keys = keys[low:high]
        if labels.empty and fields.empty:
            return [records[k][BODY] for k in keys]
        out: list[bytes] = []
        for key in keys:
            body = records[key][BODY]
            if not fields.empty:
                ns, _, name = key.rpartition("/")
                if not fields.matches(ns, name):
                    continue
            if labels.empty or labels.matches(labels_of(body)):
                out.append(body)
        return out

    def _page(self, snap_id: int, snapshot: _ListSnapshot, offset: int, limit: int) -> ListPage:
        end = offset + limit if limit > 0 else len(snapshot.bodies)
        chunk = snapshot.bodies[offset:end]
        items = [snapshot.store.list_item(b) for b in chunk]
        remaining = len(snapshot.bodies) - end
        if remaining <= 0:
            self._snapshots.pop(snap_id, None)
            return ListPage(snapshot.store, items, snapshot.rv, None, None)
        token = _encode_continue(snap_id, end, snapshot.rv)
        return ListPage(
            snapshot.store, items, snapshot.rv, token, None if snapshot.filtered else remaining
        )

    def initial_events(
        self, store: KindStore, namespace: str, labels: LabelSelector, fields: FieldSelector
    ) -> tuple[list[bytes], int]:
        """Synthetic ADDED lines for the current state, and the rv they are consistent with."""
        bodies = self._select(store, namespace, labels, fields, None)
        return [store.event_line(ADDED, body) for body in bodies], self._counter

    # == watches =============================================================================
    def open_watch(
        self, store: KindStore, namespace: str, labels: LabelSelector, fields: FieldSelector
    ) -> WatchHandle:
        handle = WatchHandle(store, namespace, labels, fields)
        store.watches.add(handle)
        self.counters.watches_opened += 1
        return handle

    def close_watch(self, handle: WatchHandle) -> None:
        handle.store.watches.discard(handle)

    def open_watch_count(self) -> int:
        return sum(len(store.watches) for store in self._kinds.values())

    def _end_watches(self, reason: WatchEnd) -> int:
        ended = 0
        for store in self._kinds.values():
            for watch in store.watches:
                watch.end = reason
                watch.wake()
                ended += 1
        return ended

    def force_410_now(self) -> int:
        """Every open watch gets an ERROR 410 Expired event, then its stream closes."""
        return self._end_watches(WatchEnd.EXPIRED)

    def drop_connections(self) -> int:
        """Every open watch connection is cut without a clean end of stream."""
        return self._end_watches(WatchEnd.DROP)

    def close_watches(self) -> int:
        """Every open watch ends cleanly (server shutdown)."""
        return self._end_watches(WatchEnd.CLOSE)

    # == fault knobs =========================================================================
    def throttle(self, n: int) -> None:
        """The next ``n`` API requests answer 429 Too Many Requests with Retry-After."""
        self.faults.throttle_left = max(0, n)

    def fail(self, n: int, status: int = 503) -> None:
        """The next ``n`` API requests answer ``status`` (a 5xx)."""
        if not 500 <= status <= 599:
            raise BadRequestError(f"fail status must be 5xx, not {status}")
        self.faults.fail_left = max(0, n)
        self.faults.fail_status = status

    def set_latency(self, ms: float) -> None:
        """Every API request waits ``ms`` milliseconds before it is answered."""
        self.faults.latency_ms = max(0.0, ms)

    def take_fault(self) -> int | None:
        """The HTTP status to fail this request with, consuming one injected fault."""
        faults = self.faults
        if faults.throttle_left > 0:
            faults.throttle_left -= 1
            self.counters.faults_served += 1
            return 429
        if faults.fail_left > 0:
            faults.fail_left -= 1
            self.counters.faults_served += 1
            return faults.fail_status
        return None


# == helpers =================================================================================
def _decode(raw: bytes) -> Obj:
    obj = orjson.loads(raw)
    assert isinstance(obj, dict)
    return obj


def _touch_status_managers(metadata: Obj, now: str) -> list[Obj]:
    """Set the time of the status subresource's managedFields entries; returns them."""
    touched = []
    for entry in metadata.get("managedFields", []):
        if entry.get("subresource") == "status":
            entry["time"] = now
            touched.append(entry)
    return touched


_META_ORDER = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
)


def _ordered_meta(meta: Obj) -> Obj:
    """Metadata keys in the order the real server writes them (identity first)."""
    ordered = {k: meta[k] for k in _META_ORDER if k in meta}
    for key, value in meta.items():
        if key not in ordered:
            ordered[key] = value
    return ordered


def _fold_string_data(body: Obj) -> None:
    """Secrets: ``stringData`` is write-only; it is merged into base64 ``data``."""
    string_data = body.pop("stringData", None)
    if string_data:
        data = dict(body.get("data") or {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode("ascii")
        body["data"] = data
    body.setdefault("type", "Opaque")


def _with_crd_status(obj: Obj) -> Obj:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
    status = {
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "acceptedNames": names,
        "storedVersions": stored,
    }
    return {**obj, "status": status}


def _encode_continue(snap_id: int, offset: int, rv: int) -> str:
    raw = orjson.dumps({"v": "kubedelta.sim/v1", "id": snap_id, "off": offset, "rv": rv})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_continue(token: str) -> tuple[int, int, int]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["id"]), int(data["off"]), int(data["rv"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadRequestError(f"invalid continue token {token!r}") from exc


__all__ = [
    "ClusterState",
    "KindStore",
    "ListPage",
    "WatchEnd",
    "WatchHandle",
    "decode_rv",
]

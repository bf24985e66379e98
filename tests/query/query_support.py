"""Helpers for query tests: Kubernetes objects, their deltas, a store filled through the
real write path, and the query app over a RocksDB secondary of it (no Kafka).

Imported as a sibling module (tests/query has no ``__init__.py``).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltas import BodyEncoding, Delta, Op, ResourceKey, encode, encode_object, topic_for
from deltas.index_fields import app_of, labels_of, owners_of
from query.auth import TokenTable
from query.config import QueryConfig
from query.service import QueryService
from store import SourceRecord, StoreOptions, View

ADMIN = "admin-token-0001"
TEAM_A = "team-a-token-001"  #: c1 only, namespace team-a only
NODES = "nodes-token-0001"  #: every cluster, cluster-scoped objects only
TOKENS = {
    "tokens": {
        ADMIN: {"clusters": ["*"], "namespaces": ["*"]},
        TEAM_A: {"clusters": ["c1"], "namespaces": ["team-a"]},
        NODES: {"clusters": ["*"], "namespaces": ["_"]},
    }
}
APP_ANNOTATION = "moniker.spinnaker.io/application"
_counter = itertools.count(1)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def k8s_object(
    kind: str,
    name: str,
    namespace: str = "default",
    *,
    api_version: str = "v1",
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    owners: Iterable[tuple[str, str, str]] = (),
    spec: Mapping[str, Any] | None = None,
    status: Mapping[str, Any] | None = None,
    uid: str | None = None,
    rv: str | None = None,
) -> dict[str, Any]:
    """owners: (kind, name, uid) triples."""
    meta: dict[str, Any] = {
        "name": name,
        "uid": uid or str(uuid.uuid4()),
        "resourceVersion": rv or str(next(_counter)),
        "creationTimestamp": "2024-01-01T00:00:00Z",
        "labels": dict(labels or {}),
        "annotations": dict(annotations or {}),
    }
    if namespace:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = [
            {"apiVersion": "apps/v1", "kind": k, "name": n, "uid": u, "controller": True}
            for k, n, u in owners
        ]
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": meta}
    if spec is not None:
        obj["spec"] = dict(spec)
    if status is not None:
        obj["status"] = dict(status)
    return obj


def delta_of(cluster: str, obj: Mapping[str, Any], op: Op = Op.UPSERT, event_ms: int = 0) -> Delta:
    api_version = str(obj["apiVersion"])
    group, _, version = api_version.rpartition("/")
    meta = obj["metadata"]
    key = ResourceKey(group, version, str(obj["kind"]), meta.get("namespace", ""), meta["name"])
    upsert = op is Op.UPSERT
    return Delta(
        op=op,
        cluster=cluster,
        key=key,
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", "") if upsert else "",
        event_time_ms=event_ms or int(time.time() * 1000),
        labels=labels_of(obj) if upsert else {},
        owners=owners_of(obj) if upsert else (),
        app=app_of(obj) if upsert else "",
        body_encoding=BodyEncoding.JSON if upsert else BodyEncoding.NONE,
        body=encode_object(obj, BodyEncoding.JSON) if upsert else b"",
    )


@dataclass
class StoreWriter:
    """Writes deltas into a store through the real apply path, as the consumer would."""

    path: Path
    options: StoreOptions = field(default_factory=StoreOptions)
    view: View = field(init=False)
    _offsets: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __post_init__(self) -> None:
        self.view = View.open(self.path, self.options)

    def write(self, cluster: str, objs: Iterable[Mapping[str, Any]], op: Op = Op.UPSERT) -> None:
        records = []
        topic = topic_for(cluster)
        for obj in objs:
            delta = delta_of(cluster, obj, op)
            offset = self._offsets[topic]
            self._offsets[topic] = offset + 1
            records.append(
                SourceRecord(
                    topic,
                    0,
                    offset,
                    delta.kafka_key(),
                    encode(delta),
                    delta.event_time_ms,
                )
            )
        result = self.view.apply(records)
        assert result.rejected == 0, result

    def close(self) -> None:
        self.view.close()


def open_service(
    store_path: Path, secondary: Path, options: StoreOptions | None = None, **overrides: Any
) -> QueryService:
    config = QueryConfig(
        store_path=store_path,
        secondary_path=secondary,
        continue_secret=b"test-secret-0123456789",
        store_options=options or StoreOptions(),
        **overrides,
    )
    return QueryService.open(config, TokenTable.from_mapping(TOKENS))


def sample_objects() -> dict[str, list[dict[str, Any]]]:
    """Three clusters: Deployments/ReplicaSets/Pods/Services of app "shop" and noise."""
    out: dict[str, list[dict[str, Any]]] = {}
    for cluster in ("c1", "c2", "c3"):
        objs: list[dict[str, Any]] = []
        for ns in ("team-a", "team-b"):
            dep_uid = f"{cluster}-{ns}-dep"
            rs_uid = f"{cluster}-{ns}-rs"
            app = {APP_ANNOTATION: "shop"}
            objs.append(
                k8s_object(
                    "Deployment",
                    "web",
                    ns,
                    api_version="apps/v1",
                    labels={"app": "web", "tier": "frontend"},
                    annotations=app,
                    uid=dep_uid,
                    spec={"replicas": 2},
                    status={"updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2},
                )
            )
            objs.append(
                k8s_object(
                    "ReplicaSet",
                    "web-5d4f",
                    ns,
                    api_version="apps/v1",
                    labels={"app": "web"},
                    annotations=app,
                    uid=rs_uid,
                    owners=[("Deployment", "web", dep_uid)],
                    spec={"replicas": 2},
                    status={"fullyLabeledReplicas": 2, "availableReplicas": 2, "readyReplicas": 2},
                )
            )
            for i, (phase, ready) in enumerate([("Running", True), ("Pending", False)]):
                objs.append(
                    k8s_object(
                        "Pod",
                        f"web-5d4f-{i}",
                        ns,
                        labels={"app": "web"},
                        owners=[("ReplicaSet", "web-5d4f", rs_uid)],
                        status={
                            "phase": phase,
                            "containerStatuses": [{"name": "main", "ready": ready}],
                        },
                    )
                )
            objs.append(
                k8s_object(
                    "Service",
                    "web",
                    ns,
                    labels={"app": "web"},
                    annotations=app,
                    spec={"selector": {"app": "web"}},
                )
            )
            for i in range(5):
                objs.append(
                    k8s_object(
                        "ConfigMap",
                        f"cfg-{i}",
                        ns,
                        labels={"app": "db" if i % 2 else "web", "idx": str(i)},
                    )
                )
        objs.append(k8s_object("Node", f"{cluster}-node-1", "", labels={"role": "worker"}))
        out[cluster] = objs
    return out

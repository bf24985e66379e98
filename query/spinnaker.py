"""Spinnaker (Clouddriver Kubernetes v2) shaped views of one application. Pure code.

Vocabulary, as Clouddriver uses it:

* account = a kubedelta cluster; region/location = a namespace ("_" when cluster-scoped);
* application = the ``moniker.spinnaker.io/application`` annotation;
* server group = a ReplicaSet, StatefulSet, DaemonSet or Job; its instances are the Pods
  it owns; a Deployment is a server group *manager*;
* load balancer = a Service or an Ingress; a Service fronts the server groups whose
  Pods its selector matches; an Ingress fronts the Services its rules name;
* Spinnaker cluster = ``moniker.spinnaker.io/cluster``, else "<kind> <name>" of the
  managing Deployment (or of the server group itself when it has no manager);
* resource names are "<spinnakerKind> <name>", e.g. "replicaSet web-5d4f".

The service gathers an application's objects (and the children they own) from the
view; everything here turns those objects into Clouddriver's JSON shapes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deltas.index_fields import MONIKER_APP
from query.health import (
    HealthState,
    combine,
    count_states,
    pod_healths,
    workload_status,
)

MONIKER_CLUSTER = "moniker.spinnaker.io/cluster"
MONIKER_SEQUENCE = "moniker.spinnaker.io/sequence"

#: (group, Kind) -> Spinnaker's lowerCamel kind name, for the kinds the views know.
SPINNAKER_KINDS: Mapping[tuple[str, str], str] = {
    ("apps", "Deployment"): "deployment",
    ("apps", "ReplicaSet"): "replicaSet",
    ("apps", "StatefulSet"): "statefulSet",
    ("apps", "DaemonSet"): "daemonSet",
    ("batch", "Job"): "job",
    ("batch", "CronJob"): "cronJob",
    ("", "Pod"): "pod",
    ("", "Service"): "service",
    ("", "ConfigMap"): "configMap",
    ("", "Secret"): "secret",
    ("", "Namespace"): "namespace",
    ("", "Node"): "node",
    ("", "ServiceAccount"): "serviceAccount",
    ("", "PersistentVolumeClaim"): "persistentVolumeClaim",
    ("networking.k8s.io", "Ingress"): "ingress",
    ("networking.k8s.io", "NetworkPolicy"): "networkPolicy",
    ("autoscaling", "HorizontalPodAutoscaler"): "horizontalpodautoscaler",
    ("policy", "PodDisruptionBudget"): "podDisruptionBudget",
}
_BY_SPINNAKER_NAME = {v.lower(): k for k, v in SPINNAKER_KINDS.items()}

SERVER_GROUP_KINDS = frozenset(
    {("apps", "ReplicaSet"), ("apps", "StatefulSet"), ("apps", "DaemonSet"), ("batch", "Job")}
)
MANAGER_KINDS = frozenset({("apps", "Deployment")})
LOAD_BALANCER_KINDS = frozenset({("", "Service"), ("networking.k8s.io", "Ingress")})
INSTANCE_KIND = ("", "Pod")
#: Kinds whose owned objects the service must fetch to build the views.
OWNER_KINDS = SERVER_GROUP_KINDS | MANAGER_KINDS


def spinnaker_kind(group: str, kind: str) -> str:
    """lowerCamel kind, or "Kind.group" for kinds outside the table (CRDs)."""
    known = SPINNAKER_KINDS.get((group, kind))
    if known is not None:
        return known
    return f"{kind}.{group}" if group else kind[:1].lower() + kind[1:]


def parse_resource_name(text: str) -> tuple[str, str, str]:
    """ "deployment web" or "Widget.example.com w1" -> (group, Kind, name); ValueError if not."""
    kind_text, sep, name = text.strip().partition(" ")
    name = name.strip()
    if not sep or not kind_text or not name or " " in name:
        raise ValueError(f"{text!r} is not '<kind> <name>' (e.g. 'deployment web')")
    known = _BY_SPINNAKER_NAME.get(kind_text.lower())
    if known is not None:
        return known[0], known[1], name
    kind, dot, group = kind_text.partition(".")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", kind) or (dot and not group):
        raise ValueError(f"unknown kind {kind_text!r} in {text!r}")
    return group, kind[:1].upper() + kind[1:], name


@dataclass(frozen=True, slots=True)
class ViewObject:
    """One object of the view with the metadata the shapes need; ``body`` is decoded JSON."""

    cluster: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    uid: str
    owners: tuple[str, ...]  #: ownerReferences[].uid
    body: Mapping[str, Any] = field(repr=False)

    @property
    def gk(self) -> tuple[str, str]:
        return (self.group, self.kind)

    @property
    def resource_name(self) -> str:
        return f"{spinnaker_kind(self.group, self.kind)} {self.name}"

    @property
    def location(self) -> str:
        return self.namespace or "_"

    @property
    def metadata(self) -> Mapping[str, Any]:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, Mapping) else {}

    def annotation(self, key: str) -> str | None:
        annotations = self.metadata.get("annotations")
        if isinstance(annotations, Mapping):
            value = annotations.get(key)
            return value if isinstance(value, str) else None
        return None

    @property
    def labels(self) -> Mapping[str, str]:
        labels = self.metadata.get("labels")
        return labels if isinstance(labels, Mapping) else {}

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def created_ms(self) -> int | None:
        stamp = self.metadata.get("creationTimestamp")
        if not isinstance(stamp, str):
            return None
        try:
            return int(datetime.fromisoformat(stamp).timestamp() * 1000)
        except ValueError:
            return None


class ApplicationView:
    """The Spinnaker shapes of one application, from its objects and what they own."""

    def __init__(self, app: str, objects: Iterable[ViewObject]) -> None:
        self.app = app
        self._objects = list({(o.cluster, o.gk, o.namespace, o.name): o for o in objects}.values())
        self._by_uid: dict[tuple[str, str], ViewObject] = {
            (o.cluster, o.uid): o for o in self._objects if o.uid
        }
        self._children: dict[tuple[str, str], list[ViewObject]] = defaultdict(list)
        for o in self._objects:
            for owner in o.owners:
                self._children[(o.cluster, owner)].append(o)

    @property
    def has_objects(self) -> bool:
        return any(self._in_app(o) for o in self._objects)

    # -- relations ------------------------------------------------------------------

    def _owner_of(self, obj: ViewObject, kinds: frozenset[tuple[str, str]]) -> ViewObject | None:
        for uid in obj.owners:
            owner = self._by_uid.get((obj.cluster, uid))
            if owner is not None and owner.gk in kinds:
                return owner
        return None

    def _owned(self, obj: ViewObject, kinds: Iterable[tuple[str, str]]) -> list[ViewObject]:
        wanted = set(kinds)
        return sorted(
            (c for c in self._children.get((obj.cluster, obj.uid), ()) if c.gk in wanted),
            key=lambda c: (c.namespace, c.name),
        )

    def _of_kinds(self, kinds: frozenset[tuple[str, str]]) -> list[ViewObject]:
        return sorted(
            (o for o in self._objects if o.gk in kinds),
            key=lambda o: (o.cluster, o.namespace, o.kind, o.name),
        )

    def _in_app(self, obj: ViewObject) -> bool:
        """Annotated with the app, or owned (transitively) by something that is."""
        seen = 0
        current: ViewObject | None = obj
        while current is not None and seen < 8:
            if current.annotation(MONIKER_APP) == self.app:
                return True
            current = self._owner_of(current, OWNER_KINDS)
            seen += 1
        return False

    def cluster_name(self, obj: ViewObject) -> str:
        annotated = obj.annotation(MONIKER_CLUSTER)
        if annotated:
            return annotated
        manager = self._owner_of(obj, MANAGER_KINDS)
        if manager is not None:
            return self.cluster_name(manager)
        if obj.gk == INSTANCE_KIND:
            server_group = self._owner_of(obj, SERVER_GROUP_KINDS)
            if server_group is not None:
                return self.cluster_name(server_group)
        return obj.resource_name

    def moniker(self, obj: ViewObject) -> dict[str, Any]:
        moniker: dict[str, Any] = {"app": self.app, "cluster": self.cluster_name(obj)}
        sequence = obj.annotation(MONIKER_SEQUENCE)
        if sequence is not None and sequence.isdigit():
            moniker["sequence"] = int(sequence)
        return moniker

    def _service_selects(self, service: ViewObject, pod: ViewObject) -> bool:
        spec = service.body.get("spec")
        selector = spec.get("selector") if isinstance(spec, Mapping) else None
        if not isinstance(selector, Mapping) or not selector:
            return False
        if (pod.cluster, pod.namespace) != (service.cluster, service.namespace):
            return False
        labels = pod.labels
        return all(labels.get(k) == v for k, v in selector.items())

    def _ingress_services(self, ingress: ViewObject) -> list[ViewObject]:
        names: set[str] = set()
        spec = ingress.body.get("spec")
        spec = spec if isinstance(spec, Mapping) else {}

        def backend_service(backend: object) -> None:
            if isinstance(backend, Mapping):
                service = backend.get("service")
                if isinstance(service, Mapping) and isinstance(service.get("name"), str):
                    names.add(service["name"])

        backend_service(spec.get("defaultBackend"))
        rules = spec.get("rules")
        for rule in rules if isinstance(rules, list) else ():
            http = rule.get("http") if isinstance(rule, Mapping) else None
            paths = http.get("paths") if isinstance(http, Mapping) else None
            for path in paths if isinstance(paths, list) else ():
                if isinstance(path, Mapping):
                    backend_service(path.get("backend"))
        return [
            o
            for o in self._of_kinds(frozenset({("", "Service")}))
            if o.cluster == ingress.cluster and o.namespace == ingress.namespace and o.name in names
        ]

    # -- shapes ---------------------------------------------------------------------

    def instance(self, pod: ViewObject) -> dict[str, Any]:
        healths = pod_healths(pod.body)
        return {
            "name": pod.resource_name,
            "displayName": pod.name,
            "humanReadableName": pod.resource_name,
            "account": pod.cluster,
            "location": pod.location,
            "zone": pod.location,
            "namespace": pod.namespace,
            "kind": "pod",
            "apiVersion": pod.api_version,
            "uid": pod.uid,
            "cloudProvider": "kubernetes",
            "providerType": "kubernetes",
            "moniker": self.moniker(pod),
            "labels": dict(pod.labels),
            "launchTime": pod.created_ms,
            "health": [h.to_json() for h in healths],
            "healthState": combine(h.state for h in healths).value,
        }

    def _pods_of(self, server_group: ViewObject) -> list[ViewObject]:
        return self._owned(server_group, [INSTANCE_KIND])

    def _load_balancer_names(self, pods: list[ViewObject]) -> list[str]:
        services = self._of_kinds(frozenset({("", "Service")}))
        return sorted(
            {s.resource_name for s in services for p in pods if self._service_selects(s, p)}
        )

    def server_group(self, sg: ViewObject) -> dict[str, Any]:
        pods = self._pods_of(sg)
        instances = [self.instance(p) for p in pods]
        states = [HealthState(i["healthState"]) for i in instances]
        status = workload_status(sg.body)
        manager = self._owner_of(sg, MANAGER_KINDS)
        return {
            "name": sg.resource_name,
            "displayName": sg.name,
            "account": sg.cluster,
            "region": sg.location,
            "namespace": sg.namespace,
            "zones": [],
            "cloudProvider": "kubernetes",
            "type": "kubernetes",
            "kind": spinnaker_kind(sg.group, sg.kind),
            "apiVersion": sg.api_version,
            "uid": sg.uid,
            "createdTime": sg.created_ms,
            "moniker": self.moniker(sg),
            "labels": dict(sg.labels),
            "disabled": False,
            "capacity": {"min": status.desired, "max": status.desired, "desired": status.desired},
            "instanceCounts": count_states(states).to_json(),
            "instances": instances,
            "loadBalancers": self._load_balancer_names(pods),
            "serverGroupManagers": (
                [{"account": manager.cluster, "location": manager.location, "name": manager.name}]
                if manager is not None
                else []
            ),
            "status": status.to_json(),
        }

    def server_groups(self) -> list[dict[str, Any]]:
        return [
            self.server_group(sg) for sg in self._of_kinds(SERVER_GROUP_KINDS) if self._in_app(sg)
        ]

    def server_group_managers(self) -> list[dict[str, Any]]:
        out = []
        for manager in self._of_kinds(MANAGER_KINDS):
            if not self._in_app(manager):
                continue
            groups = self._owned(manager, SERVER_GROUP_KINDS)
            out.append(
                {
                    "name": manager.resource_name,
                    "displayName": manager.name,
                    "account": manager.cluster,
                    "region": manager.location,
                    "namespace": manager.namespace,
                    "cloudProvider": "kubernetes",
                    "kind": spinnaker_kind(manager.group, manager.kind),
                    "apiVersion": manager.api_version,
                    "uid": manager.uid,
                    "moniker": self.moniker(manager),
                    "labels": dict(manager.labels),
                    "createdTime": manager.created_ms,
                    "status": workload_status(manager.body).to_json(),
                    "serverGroups": [
                        {
                            "account": g.cluster,
                            "namespace": g.namespace,
                            "name": g.resource_name,
                            "moniker": self.moniker(g),
                        }
                        for g in groups
                    ],
                }
            )
        return out

    def _lb_server_groups(self, pods: list[ViewObject]) -> list[dict[str, Any]]:
        by_group: dict[tuple[str, str], tuple[ViewObject, list[ViewObject]]] = {}
        for pod in pods:
            sg = self._owner_of(pod, SERVER_GROUP_KINDS)
            if sg is None:
                continue
            by_group.setdefault((sg.cluster, sg.uid), (sg, []))[1].append(pod)
        out = []
        for sg, sg_pods in sorted(by_group.values(), key=lambda t: t[0].resource_name):
            out.append(
                {
                    "name": sg.resource_name,
                    "account": sg.cluster,
                    "region": sg.location,
                    "cloudProvider": "kubernetes",
                    "isDisabled": False,
                    "detachedInstances": [],
                    "instances": [
                        {
                            "id": p.resource_name,
                            "name": p.resource_name,
                            "zone": p.location,
                            "health": {
                                "platform": "platform",
                                "source": "Pod",
                                "state": combine(h.state for h in pod_healths(p.body)).value,
                            },
                        }
                        for p in sg_pods
                    ],
                }
            )
        return out

    def load_balancers(self) -> list[dict[str, Any]]:
        pods = self._of_kinds(frozenset({INSTANCE_KIND}))
        out = []
        for lb in self._of_kinds(LOAD_BALANCER_KINDS):
            if not self._in_app(lb):
                continue
            if lb.gk == ("", "Service"):
                fronted = [p for p in pods if self._service_selects(lb, p)]
            else:
                services = self._ingress_services(lb)
                fronted = [p for p in pods if any(self._service_selects(s, p) for s in services)]
            out.append(
                {
                    "name": lb.resource_name,
                    "displayName": lb.name,
                    "account": lb.cluster,
                    "region": lb.location,
                    "namespace": lb.namespace,
                    "cloudProvider": "kubernetes",
                    "type": "kubernetes",
                    "kind": spinnaker_kind(lb.group, lb.kind),
                    "apiVersion": lb.api_version,
                    "uid": lb.uid,
                    "moniker": self.moniker(lb),
                    "labels": dict(lb.labels),
                    "createdTime": lb.created_ms,
                    "serverGroups": self._lb_server_groups(fronted),
                }
            )
        return out

    def instances(self) -> list[dict[str, Any]]:
        return [
            self.instance(p) for p in self._of_kinds(frozenset({INSTANCE_KIND})) if self._in_app(p)
        ]

    def cluster_names(self) -> dict[str, list[str]]:
        """account -> Spinnaker cluster names (Clouddriver's ``clusterNames``)."""
        names: dict[str, set[str]] = defaultdict(set)
        for o in self._of_kinds(SERVER_GROUP_KINDS | MANAGER_KINDS):
            if self._in_app(o):
                names[o.cluster].add(self.cluster_name(o))
        return {account: sorted(v) for account, v in sorted(names.items())}

    def clusters(self) -> list[dict[str, Any]]:
        """One entry per (account, cluster name) with its server groups and load balancers."""
        groups = self.server_groups()
        out = []
        for account, cluster_list in self.cluster_names().items():
            for name in cluster_list:
                members = [
                    g for g in groups if g["account"] == account and g["moniker"]["cluster"] == name
                ]
                out.append(
                    {
                        "name": name,
                        "account": account,
                        "accountName": account,
                        "application": self.app,
                        "moniker": {"app": self.app, "cluster": name},
                        "type": "kubernetes",
                        "serverGroups": members,
                        "loadBalancers": sorted({lb for g in members for lb in g["loadBalancers"]}),
                    }
                )
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.app,
            "attributes": {"name": self.app, "cloudProviders": "kubernetes"},
            "clusterNames": self.cluster_names(),
        }


def manifest(view: ApplicationView | None, obj: ViewObject) -> dict[str, Any]:
    """Clouddriver's ``/manifests/{account}/{location}/{name}`` shape."""
    moniker = (
        view.moniker(obj)
        if view is not None
        else {"app": obj.annotation(MONIKER_APP) or "", "cluster": obj.resource_name}
    )
    status: dict[str, Any] = {}
    if obj.gk in SERVER_GROUP_KINDS | MANAGER_KINDS:
        status = workload_status(obj.body).to_json()
    return {
        "account": obj.cluster,
        "location": obj.location,
        "name": obj.resource_name,
        "kind": obj.kind,
        "apiVersion": obj.api_version,
        "manifest": obj.body,
        "moniker": moniker,
        "status": status,
        "artifacts": [],
        "events": [],
        "metrics": [],
        "warnings": [],
    }

"""The API resources a simulated cluster serves, as discovery describes them."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

#: Verbs of a resource backed by storage (what the real server lists for pods).
STORAGE_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
_STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True, slots=True)
class Subresource:
    """A discovery-only entry like ``pods/status``: never listable."""

    name: str  #: the part after the slash, e.g. "status"
    verbs: tuple[str, ...] = _STATUS_VERBS
    kind: str = ""  #: "" = the parent's kind (e.g. pods/eviction has kind Eviction)
    #: Group/version of ``kind`` when it lives elsewhere (Scale is autoscaling/v1).
    group_version: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One listable, watchable resource: its identity and how discovery shows it."""

    group: str  #: "" for the core group
    version: str
    kind: str
    plural: str  #: the resource name in URLs
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[Subresource, ...] = ()
    #: Served like a custom resource: list items carry kind/apiVersion (the
    #: real server omits them for built-in typed lists but not for unstructured).
    unstructured: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery_entries(self) -> list[dict[str, Any]]:
        """APIResource entries for this resource and its subresources."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(STORAGE_VERBS),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entry["storageVersionHash"] = _storage_version_hash(self)
        entries = [entry]
        for sub in self.subresources:
            sub_entry: dict[str, Any] = {
                "name": f"{self.plural}/{sub.name}",
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": sub.kind or self.kind,
                "verbs": list(sub.verbs),
            }
            if sub.group_version is not None:
                sub_entry["group"], sub_entry["version"] = sub.group_version
            entries.append(sub_entry)
        return entries


def _storage_version_hash(spec: KindSpec) -> str:
    digest = hashlib.sha256(f"{spec.group}/{spec.version}/{spec.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode("ascii")


@dataclass(frozen=True, slots=True)
class ExtraResource:
    """A discovery entry with no storage behind it (e.g. ``bindings``: create only)."""

    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]

    def discovery_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "singularName": self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }


_POD_SUBRESOURCES = (
    Subresource("attach", ("create", "get"), "PodAttachOptions"),
    Subresource("binding", ("create",), "Binding"),
    Subresource("ephemeralcontainers", _STATUS_VERBS),
    Subresource("eviction", ("create",), "Eviction", ("policy", "v1")),
    Subresource("exec", ("create", "get"), "PodExecOptions"),
    Subresource("log", ("get",)),
    Subresource("portforward", ("create", "get"), "PodPortForwardOptions"),
    Subresource("proxy", ("create", "delete", "get", "patch", "update"), "PodProxyOptions"),
    Subresource("status"),
)
_SCALABLE = (
    Subresource("scale", _STATUS_VERBS, "Scale", ("autoscaling", "v1")),
    Subresource("status"),
)

NAMESPACE = KindSpec(
    "",
    "v1",
    "Namespace",
    "namespaces",
    namespaced=False,
    short_names=("ns",),
    subresources=(Subresource("finalize", ("update",)), Subresource("status")),
)
NODE = KindSpec(
    "",
    "v1",
    "Node",
    "nodes",
    namespaced=False,
    short_names=("no",),
    subresources=(
        Subresource("proxy", ("create", "delete", "get", "patch", "update"), "NodeProxyOptions"),
        Subresource("status"),
    ),
)
POD = KindSpec(
    "",
    "v1",
    "Pod",
    "pods",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    subresources=_POD_SUBRESOURCES,
)
SERVICE = KindSpec(
    "",
    "v1",
    "Service",
    "services",
    namespaced=True,
    short_names=("svc",),
    categories=("all",),
    subresources=(
        Subresource("proxy", ("create", "delete", "get", "patch", "update"), "ServiceProxyOptions"),
        Subresource("status"),
    ),
)
CONFIG_MAP = KindSpec("", "v1", "ConfigMap", "configmaps", namespaced=True, short_names=("cm",))
SECRET = KindSpec("", "v1", "Secret", "secrets", namespaced=True)
DEPLOYMENT = KindSpec(
    "apps",
    "v1",
    "Deployment",
    "deployments",
    namespaced=True,
    short_names=("deploy",),
    categories=("all",),
    subresources=_SCALABLE,
)
REPLICA_SET = KindSpec(
    "apps",
    "v1",
    "ReplicaSet",
    "replicasets",
    namespaced=True,
    short_names=("rs",),
    categories=("all",),
    subresources=_SCALABLE,
)
STATEFUL_SET = KindSpec(
    "apps",
    "v1",
    "StatefulSet",
    "statefulsets",
    namespaced=True,
    short_names=("sts",),
    categories=("all",),
    subresources=_SCALABLE,
)
DAEMON_SET = KindSpec(
    "apps",
    "v1",
    "DaemonSet",
    "daemonsets",
    namespaced=True,
    short_names=("ds",),
    categories=("all",),
    subresources=(Subresource("status"),),
)
JOB = KindSpec(
    "batch",
    "v1",
    "Job",
    "jobs",
    namespaced=True,
    categories=("all",),
    subresources=(Subresource("status"),),
)
INGRESS = KindSpec(
    "networking.k8s.io",
    "v1",
    "Ingress",
    "ingresses",
    namespaced=True,
    short_names=("ing",),
    subresources=(Subresource("status"),),
)
CUSTOM_RESOURCE_DEFINITION = KindSpec(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    subresources=(Subresource("status"),),
)

#: Built-in kinds every simulated cluster serves, in discovery order.
BUILTIN_KINDS: tuple[KindSpec, ...] = (
    NAMESPACE,
    NODE,
    POD,
    SERVICE,
    CONFIG_MAP,
    SECRET,
    DEPLOYMENT,
    REPLICA_SET,
    STATEFUL_SET,
    DAEMON_SET,
    JOB,
    INGRESS,
    CUSTOM_RESOURCE_DEFINITION,
)

#: Discovery entries without storage, so discovery code must check verbs:
#: ``bindings`` is create-only, and the authorization group has nothing listable.
EXTRA_RESOURCES: tuple[ExtraResource, ...] = (
    ExtraResource("", "v1", "bindings", "Binding", namespaced=True, verbs=("create",)),
    ExtraResource(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
)

#: The CRD installed by ``SimulatorConfig.with_widget_crd``.
WIDGET = KindSpec(
    "example.com",
    "v1",
    "Widget",
    "widgets",
    namespaced=True,
    short_names=("wdg",),
    subresources=(Subresource("status"),),
    unstructured=True,
)


def crd_object(spec: KindSpec) -> dict[str, Any]:
    """The CustomResourceDefinition object that defines ``spec``."""
    return {
        "apiVersion": CUSTOM_RESOURCE_DEFINITION.api_version,
        "kind": CUSTOM_RESOURCE_DEFINITION.kind,
        "metadata": {"name": f"{spec.plural}.{spec.group}"},
        "spec": {
            "group": spec.group,
            "names": {
                "kind": spec.kind,
                "listKind": spec.list_kind,
                "plural": spec.plural,
                "singular": spec.singular,
                **({"shortNames": list(spec.short_names)} if spec.short_names else {}),
            },
            "scope": "Namespaced" if spec.namespaced else "Cluster",
            "versions": [
                {
                    "name": spec.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}},
                }
            ],
            "conversion": {"strategy": "None"},
        },
    }


def kind_from_crd(crd: dict[str, Any]) -> KindSpec:
    """The KindSpec a CustomResourceDefinition object defines (its storage version).

    Raises KeyError/TypeError/StopIteration on a malformed CRD; callers wrap them.
    """
    spec = crd["spec"]
    names = spec["names"]
    versions = [v for v in spec["versions"] if v.get("served", True)]
    storage = next((v for v in versions if v.get("storage")), versions[0])
    return KindSpec(
        group=str(spec["group"]),
        version=str(storage["name"]),
        kind=str(names["kind"]),
        plural=str(names["plural"]),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=tuple(names.get("shortNames", ())),
        subresources=(Subresource("status"),)
        if "status" in storage.get("subresources", {})
        else (),
        unstructured=True,
    )

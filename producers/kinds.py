"""Which kinds a cluster serves and which of them to stream. Pure code: discovery
documents in, ``KindRef`` values out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from producers.config import FilterConfig

GroupKind = tuple[str, str]  #: (group, Kind): the version-independent identity of a kind


@dataclass(frozen=True, slots=True)
class KindRef:
    """One listable, watchable resource as discovery describes it."""

    group: str  #: "" for the core group
    version: str  #: the group's preferred version (keys do not include it)
    kind: str  #: e.g. "Deployment"
    plural: str  #: resource name in URLs, e.g. "deployments"
    namespaced: bool

    @property
    def group_kind(self) -> GroupKind:
        return (self.group, self.kind)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def label(self) -> str:
        """Metric label and log name: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def collection_path(self) -> str:
        """Cluster-wide collection URL path (lists every namespace)."""
        if self.group:
            return f"/apis/{self.group}/{self.version}/{self.plural}"
        return f"/api/{self.version}/{self.plural}"


def group_versions(core: Mapping[str, Any], groups: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(group, version) to fetch resources for: core ``v1`` and each group's preferred
    version. One version per group: keys exclude the version, so serving the same
    objects under two versions would only duplicate them."""
    out: list[tuple[str, str]] = []
    versions = core.get("versions") or []
    if "v1" in versions:
        out.append(("", "v1"))
    elif versions:
        out.append(("", str(versions[0])))
    for g in groups.get("groups") or []:
        name = g.get("name")
        preferred = (g.get("preferredVersion") or {}).get("version")
        if not preferred:
            listed = g.get("versions") or []
            preferred = listed[0].get("version") if listed else None
        if name and preferred:
            out.append((str(name), str(preferred)))
    return out


def kinds_of_resource_list(group: str, version: str, doc: Mapping[str, Any]) -> list[KindRef]:
    """The resources of one APIResourceList that support list and watch (no subresources)."""
    out = []
    for res in doc.get("resources") or []:
        name = str(res.get("name", ""))
        if not name or "/" in name:
            continue  # pods/status, deployments/scale, ...
        verbs = res.get("verbs") or ()
        if "list" not in verbs or "watch" not in verbs:
            continue
        out.append(
            KindRef(
                group=str(res.get("group") or group),
                version=str(res.get("version") or version),
                kind=str(res.get("kind", "")),
                plural=name,
                namespaced=bool(res.get("namespaced", False)),
            )
        )
    return out


def is_aggregated(doc: Any) -> bool:
    """Whether a discovery answer is aggregated (``APIGroupDiscoveryList``, v2 or
    v2beta1): a server that does not know the format answers legacy documents."""
    return isinstance(doc, Mapping) and doc.get("kind") == "APIGroupDiscoveryList"


def kinds_of_aggregated(doc: Mapping[str, Any]) -> tuple[list[KindRef], set[str]]:
    """(kinds, groups whose resources are unknown) of one ``APIGroupDiscoveryList``.

    Same choice as the legacy path: core ``v1`` (else its first version), and each
    group's preferred version, which is the first listed. A group whose preferred
    version is ``Stale`` (an aggregated API server that is down) is reported as
    unknown, so its watches are neither started nor stopped."""
    kinds: list[KindRef] = []
    failed: set[str] = set()
    for item in doc.get("items") or []:
        group = str((item.get("metadata") or {}).get("name") or "")
        versions = item.get("versions") or []
        if not versions:
            continue
        chosen = versions[0]
        if not group:
            chosen = next((v for v in versions if v.get("version") == "v1"), chosen)
        version = str(chosen.get("version", ""))
        if not version:
            continue
        if chosen.get("freshness") == "Stale":
            failed.add(group)
            continue
        for res in chosen.get("resources") or []:
            name = str(res.get("resource", ""))
            verbs = res.get("verbs") or ()
            if not name or "/" in name or "list" not in verbs or "watch" not in verbs:
                continue
            kinds.append(
                KindRef(
                    group=group,
                    version=version,
                    kind=str((res.get("responseKind") or {}).get("kind", "")),
                    plural=name,
                    namespaced=res.get("scope") == "Namespaced",
                )
            )
    return kinds, failed


def _matches(entry: str, ref: KindRef) -> bool:
    """``name`` matches in any group; ``name.group`` only in that group (``core`` = "");
    ``*.group`` matches a whole group."""
    text = entry.strip().lower()
    name, dot, group = text.partition(".")
    if dot:
        wanted_group = "" if group == "core" else group
        if wanted_group != ref.group.lower():
            return False
    return name == "*" or name in (ref.plural.lower(), ref.kind.lower())


def _matches_any(entries: Iterable[str], ref: KindRef) -> bool:
    return any(_matches(e, ref) for e in entries)


def select_kinds(refs: Iterable[KindRef], filters: FilterConfig) -> list[KindRef]:
    """Apply include/exclude lists; drop Secrets when configured. First ref of a
    (group, kind) wins, so a kind never runs two watches."""
    chosen: dict[GroupKind, KindRef] = {}
    for ref in refs:
        if ref.group_kind in chosen:
            continue
        if filters.include_kinds and not _matches_any(filters.include_kinds, ref):
            continue
        if _matches_any(filters.exclude_kinds, ref):
            continue
        if filters.drop_secrets and ref.group == "" and ref.kind == "Secret":
            continue
        chosen[ref.group_kind] = ref
    return list(chosen.values())


@dataclass(frozen=True, slots=True)
class NamespaceFilter:
    """Client-side namespace filter (the watch is cluster-wide either way)."""

    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    @classmethod
    def of(cls, filters: FilterConfig) -> NamespaceFilter:
        return cls(frozenset(filters.include_namespaces), frozenset(filters.exclude_namespaces))

    @property
    def passes_all(self) -> bool:
        return not self.include and not self.exclude

    def allows(self, namespace: str) -> bool:
        if not namespace:
            return True  # cluster-scoped objects are not in any namespace
        if self.include and namespace not in self.include:
            return False
        return namespace not in self.exclude

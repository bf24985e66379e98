"""Discovery parsing and kind/namespace filters: pure."""

from __future__ import annotations

from producers.config import FilterConfig
from producers.kinds import (
    KindRef,
    NamespaceFilter,
    group_versions,
    kinds_of_resource_list,
    select_kinds,
)

CORE = {"versions": ["v1"]}
GROUPS = {
    "groups": [
        {"name": "apps", "versions": [{"version": "v1"}], "preferredVersion": {"version": "v1"}},
        {
            "name": "example.com",
            "versions": [{"version": "v2"}, {"version": "v1"}],
            "preferredVersion": {"version": "v2"},
        },
    ]
}
V = ["get", "list", "watch"]


def test_group_versions_take_core_and_preferred_versions() -> None:
    assert group_versions(CORE, GROUPS) == [("", "v1"), ("apps", "v1"), ("example.com", "v2")]


def test_subresources_and_unwatchable_resources_are_skipped() -> None:
    doc = {
        "resources": [
            {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": V},
            {"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
            {"name": "bindings", "kind": "Binding", "namespaced": True, "verbs": ["create"]},
            {"name": "componentstatuses", "kind": "ComponentStatus", "verbs": ["get", "list"]},
            {"name": "nodes", "kind": "Node", "namespaced": False, "verbs": V},
        ]
    }
    refs = kinds_of_resource_list("", "v1", doc)
    assert [r.plural for r in refs] == ["pods", "nodes"]
    assert refs[0].collection_path() == "/api/v1/pods"
    assert not refs[1].namespaced


def ref(plural: str, kind: str, group: str = "") -> KindRef:
    return KindRef(group, "v1", kind, plural, True)


ALL = [
    ref("pods", "Pod"),
    ref("secrets", "Secret"),
    ref("events", "Event"),
    ref("events", "Event", "events.k8s.io"),
    ref("leases", "Lease", "coordination.k8s.io"),
    ref("deployments", "Deployment", "apps"),
    ref("widgets", "Widget", "example.com"),
    ref("gadgets", "Gadget", "example.com"),
]


def names(refs: list[KindRef]) -> list[str]:
    return [r.label for r in refs]


def test_default_filters_skip_events_and_leases() -> None:
    assert names(select_kinds(ALL, FilterConfig())) == [
        "pods",
        "secrets",
        "deployments.apps",
        "widgets.example.com",
        "gadgets.example.com",
    ]


def test_include_by_kind_plural_and_group_wildcard() -> None:
    chosen = select_kinds(
        ALL, FilterConfig(include_kinds=("Deployment.apps", "pods", "*.example.com"))
    )
    assert names(chosen) == [
        "pods",
        "deployments.apps",
        "widgets.example.com",
        "gadgets.example.com",
    ]


def test_exclude_and_drop_secrets() -> None:
    chosen = select_kinds(
        ALL, FilterConfig(exclude_kinds=("gadget.example.com",), drop_secrets=True)
    )
    assert "secrets" not in names(chosen) and "gadgets.example.com" not in names(chosen)
    assert "events" in names(chosen)  # the default exclusions were replaced


def test_group_qualified_entries_do_not_match_other_groups() -> None:
    chosen = select_kinds(ALL, FilterConfig(include_kinds=("events.core",), exclude_kinds=()))
    assert [(r.group, r.kind) for r in chosen] == [("", "Event")]


def test_namespace_filter() -> None:
    f = NamespaceFilter.of(FilterConfig(include_namespaces=("a", "b"), exclude_namespaces=("b",)))
    assert f.allows("a") and not f.allows("b") and not f.allows("c")
    assert f.allows("")  # cluster-scoped objects always pass
    assert NamespaceFilter().passes_all

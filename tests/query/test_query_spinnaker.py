"""Spinnaker-shaped views of an application, from view objects."""

from __future__ import annotations

from typing import Any

import pytest

from query.spinnaker import ApplicationView, ViewObject, manifest, parse_resource_name

APP = "shop"
ANNOT = {"moniker.spinnaker.io/application": APP}


def obj(
    group: str,
    version: str,
    kind: str,
    name: str,
    uid: str,
    *,
    owners: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    cluster: str = "c1",
) -> ViewObject:
    body = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "labels": labels or {},
            "annotations": annotations or {},
            "creationTimestamp": "2024-01-01T00:00:00Z",
        },
        "spec": spec or {},
        "status": status or {},
    }
    return ViewObject(cluster, group, version, kind, "ns", name, uid, owners, body)


def running_pod(name: str, uid: str, owner: str, ready: bool = True) -> ViewObject:
    return obj(
        "",
        "v1",
        "Pod",
        name,
        uid,
        owners=(owner,),
        labels={"app": "web"},
        status={"phase": "Running", "containerStatuses": [{"name": "main", "ready": ready}]},
    )


@pytest.fixture
def view() -> ApplicationView:
    deploy = obj(
        "apps",
        "v1",
        "Deployment",
        "web",
        "d1",
        annotations=ANNOT,
        spec={"replicas": 2},
        status={"updatedReplicas": 2, "availableReplicas": 2, "readyReplicas": 2},
    )
    rs = obj(
        "apps",
        "v1",
        "ReplicaSet",
        "web-5d4f",
        "r1",
        owners=("d1",),
        spec={"replicas": 2},
        status={"fullyLabeledReplicas": 2, "availableReplicas": 1, "readyReplicas": 1},
    )
    pods = [running_pod("web-5d4f-a", "p1", "r1"), running_pod("web-5d4f-b", "p2", "r1", False)]
    svc = obj(
        "", "v1", "Service", "web", "s1", annotations=ANNOT, spec={"selector": {"app": "web"}}
    )
    ing = obj(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "web",
        "i1",
        annotations=ANNOT,
        spec={"rules": [{"http": {"paths": [{"backend": {"service": {"name": "web"}}}]}}]},
    )
    other = obj(
        "apps",
        "v1",
        "StatefulSet",
        "db",
        "x1",
        annotations={**ANNOT, "moniker.spinnaker.io/cluster": "database"},
    )
    stranger = obj("apps", "v1", "ReplicaSet", "unrelated", "u1")
    return ApplicationView(APP, [deploy, rs, *pods, svc, ing, other, stranger])


def test_server_groups(view: ApplicationView) -> None:
    groups = {g["name"]: g for g in view.server_groups()}
    assert set(groups) == {"replicaSet web-5d4f", "statefulSet db"}
    rs = groups["replicaSet web-5d4f"]
    assert rs["moniker"] == {"app": APP, "cluster": "deployment web"}
    assert rs["serverGroupManagers"] == [{"account": "c1", "location": "ns", "name": "web"}]
    assert rs["capacity"]["desired"] == 2
    assert rs["instanceCounts"]["up"] == 1 and rs["instanceCounts"]["down"] == 1
    assert [i["healthState"] for i in rs["instances"]] == ["Up", "Down"]
    assert rs["loadBalancers"] == ["service web"]
    assert rs["status"]["stable"]["state"] is False
    assert groups["statefulSet db"]["moniker"]["cluster"] == "database"


def test_clusters_and_summary(view: ApplicationView) -> None:
    assert view.cluster_names() == {"c1": ["database", "deployment web"]}
    assert view.summary()["clusterNames"] == {"c1": ["database", "deployment web"]}
    clusters = {c["name"]: c for c in view.clusters()}
    assert [g["name"] for g in clusters["deployment web"]["serverGroups"]] == [
        "replicaSet web-5d4f"
    ]


def test_managers(view: ApplicationView) -> None:
    (manager,) = view.server_group_managers()
    assert manager["name"] == "deployment web"
    assert manager["status"]["stable"]["state"] is True
    assert [g["name"] for g in manager["serverGroups"]] == ["replicaSet web-5d4f"]


def test_load_balancers(view: ApplicationView) -> None:
    lbs = {lb["name"]: lb for lb in view.load_balancers()}
    assert set(lbs) == {"service web", "ingress web"}
    for lb in lbs.values():
        (sg,) = lb["serverGroups"]
        assert sg["name"] == "replicaSet web-5d4f"
        assert sorted(i["health"]["state"] for i in sg["instances"]) == ["Down", "Up"]


def test_instances(view: ApplicationView) -> None:
    names = [i["name"] for i in view.instances()]
    assert names == ["pod web-5d4f-a", "pod web-5d4f-b"]


def test_manifest(view: ApplicationView) -> None:
    deploy = next(o for o in view._objects if o.kind == "Deployment")
    shape = manifest(view, deploy)
    assert shape["name"] == "deployment web" and shape["location"] == "ns"
    assert shape["manifest"]["kind"] == "Deployment"
    assert shape["status"]["stable"]["state"] is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("deployment web", ("apps", "Deployment", "web")),
        ("replicaSet web-1", ("apps", "ReplicaSet", "web-1")),
        ("Service web", ("", "Service", "web")),
        ("widget.example.com w1", ("example.com", "Widget", "w1")),
    ],
)
def test_parse_resource_name(text: str, expected: tuple[str, str, str]) -> None:
    assert parse_resource_name(text) == expected


@pytest.mark.parametrize("text", ["deployment", "", "deployment a b", "9x y", "x. y"])
def test_parse_resource_name_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_resource_name(text)

"""Index fields lifted out of a Kubernetes object into the record header."""

from __future__ import annotations

from typing import Any

from deltas.index_fields import MONIKER_APP, app_of, labels_of, owners_of

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "web",
        "labels": {"app": "web", "名前": "🚀"},
        "annotations": {MONIKER_APP: "storefront", "other": "x"},
        "ownerReferences": [
            {"kind": "Thing", "name": "a", "uid": "uid-a"},
            {"kind": "Thing", "name": "b"},  # no uid: nothing to index
            {"kind": "Thing", "name": "c", "uid": ""},
            {"kind": "Thing", "name": "d", "uid": "uid-d"},
        ],
    },
}


def test_labels() -> None:
    assert labels_of(DEPLOYMENT) == {"app": "web", "名前": "🚀"}


def test_labels_are_strings() -> None:
    assert labels_of({"metadata": {"labels": {"n": 1, "b": True}}}) == {"n": "1", "b": "True"}


def test_owners_keep_order_and_skip_missing_uids() -> None:
    assert owners_of(DEPLOYMENT) == ("uid-a", "uid-d")


def test_app_from_the_moniker_annotation() -> None:
    assert MONIKER_APP == "moniker.spinnaker.io/application"
    assert app_of(DEPLOYMENT) == "storefront"


def test_absent_or_null_fields_give_empty_values() -> None:
    empty: list[dict[str, Any]] = [
        {},
        {"metadata": None},
        {"metadata": {}},
        {"metadata": {"labels": None, "annotations": None, "ownerReferences": None}},
    ]
    for obj in empty:
        assert labels_of(obj) == {}
        assert owners_of(obj) == ()
        assert app_of(obj) == ""

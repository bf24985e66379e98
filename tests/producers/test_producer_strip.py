"""Stripping and fingerprinting: pure, no broker."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson

from producers.config import StripConfig
from producers.strip import (
    LAST_APPLIED,
    LEADER_ANNOTATION,
    SECRET_HASH_ANNOTATION,
    SECRET_KEYS_ANNOTATION,
    body_of,
    fingerprint,
    fingerprint_of_body,
    strip_object,
)


def pod(rv: str = "1", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "web-1",
            "namespace": "default",
            "uid": "u-1",
            "resourceVersion": rv,
            "labels": {"app": "web"},
            "managedFields": [{"manager": "kubelet", "operation": "Update", "time": "2024"}],
            "annotations": {LAST_APPLIED: '{"big": "json"}', "keep": "me"},
        },
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": {"phase": "Running", **status},
    }


def strip(
    obj: dict[str, Any], kind: str = "Pod", config: StripConfig | None = None
) -> dict[str, Any]:
    return strip_object(obj, group="", version="v1", kind=kind, config=config or StripConfig())


def test_managed_fields_and_last_applied_are_removed_and_kind_is_set() -> None:
    obj = strip(pod())
    assert "managedFields" not in obj["metadata"]
    assert obj["metadata"]["annotations"] == {"keep": "me"}
    assert obj["apiVersion"] == "v1" and obj["kind"] == "Pod"


def test_last_applied_kept_when_configured_but_never_on_secrets() -> None:
    obj = strip(pod(), config=StripConfig(keep_last_applied=True))
    assert LAST_APPLIED in obj["metadata"]["annotations"]
    secret = {"metadata": {"name": "s", "annotations": {LAST_APPLIED: '{"data": {"pw": "x"}}'}}}
    out = strip(secret, kind="Secret", config=StripConfig(keep_last_applied=True))
    assert LAST_APPLIED not in out["metadata"]["annotations"]


def test_empty_annotations_disappear_so_fingerprints_do_not_depend_on_them() -> None:
    a = pod()
    a["metadata"]["annotations"] = {LEADER_ANNOTATION: "x"}
    b = pod()
    del b["metadata"]["annotations"]
    assert fingerprint(strip(a)) == fingerprint(strip(b))


def test_fingerprint_ignores_resource_version_and_stripped_noise_only() -> None:
    base = fingerprint(strip(pod(rv="1")))
    noise = pod(rv="2")
    noise["metadata"]["managedFields"][0]["time"] = "2025"
    assert fingerprint(strip(noise)) == base
    assert fingerprint(strip(pod(rv="3", phase="Failed"))) != base


def test_fingerprint_leaves_the_object_intact() -> None:
    obj = strip(pod(rv="7"))
    before = copy.deepcopy(obj)
    fingerprint(obj)
    assert obj == before


def test_list_items_without_kind_and_watch_objects_with_it_fingerprint_the_same() -> None:
    listed = pod()
    watched = pod()
    watched["kind"], watched["apiVersion"] = "Pod", "v1"
    assert fingerprint(strip(listed)) == fingerprint(strip(watched))


def test_body_is_sorted_json_and_its_fingerprint_can_be_recomputed() -> None:
    obj = strip(pod(rv="9"))
    body = body_of(obj)
    assert body == orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    assert orjson.loads(body)["metadata"]["resourceVersion"] == "9"
    assert fingerprint_of_body(body, "9") == fingerprint(obj)


def test_fingerprint_cuts_only_the_objects_own_resource_version() -> None:
    event = {
        "involvedObject": {"kind": "Pod", "name": "x", "resourceVersion": "41"},
        "metadata": {"name": "e", "resourceVersion": "50"},
    }
    moved = copy.deepcopy(event)
    moved["involvedObject"]["resourceVersion"] = "42"
    assert fingerprint(event) != fingerprint(moved)
    bumped = copy.deepcopy(event)
    bumped["metadata"]["resourceVersion"] = "51"
    assert fingerprint(event) == fingerprint(bumped)


def test_fingerprint_of_escaped_resource_version() -> None:
    obj = {"metadata": {"name": "a", "resourceVersion": 'r"1\\'}}
    other = {"metadata": {"name": "a", "resourceVersion": "2"}}
    assert fingerprint(obj) == fingerprint(other)


def secret(value: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "db", "namespace": "default", "resourceVersion": "1"},
        "type": "Opaque",
        "data": {"password": base64.b64encode(value.encode()).decode(), "user": "YWRtaW4="},
    }


def test_secret_data_is_replaced_by_key_names_and_a_keyed_hash() -> None:
    obj = strip(secret("hunter2"), kind="Secret", config=StripConfig(secret_hash_key=b"k1"))
    body = body_of(obj)
    assert "data" not in obj and "stringData" not in obj
    assert b"hunter2" not in body and base64.b64encode(b"hunter2") not in body
    annotations = obj["metadata"]["annotations"]
    assert annotations[SECRET_KEYS_ANNOTATION] == "password,user"
    same = strip(secret("hunter2"), kind="Secret", config=StripConfig(secret_hash_key=b"k1"))
    other_value = strip(secret("hunter3"), kind="Secret", config=StripConfig(secret_hash_key=b"k1"))
    other_key = strip(secret("hunter2"), kind="Secret", config=StripConfig(secret_hash_key=b"k2"))
    h = annotations[SECRET_HASH_ANNOTATION]
    assert same["metadata"]["annotations"][SECRET_HASH_ANNOTATION] == h
    assert other_value["metadata"]["annotations"][SECRET_HASH_ANNOTATION] != h
    assert other_key["metadata"]["annotations"][SECRET_HASH_ANNOTATION] != h


def test_secret_change_of_value_changes_the_fingerprint() -> None:
    a = fingerprint(strip(secret("a"), kind="Secret"))
    b = fingerprint(strip(secret("b"), kind="Secret"))
    assert a != b


def test_node_heartbeats_are_noise() -> None:
    def node(beat: str, status: str = "True") -> dict[str, Any]:
        return {
            "metadata": {"name": "n1", "resourceVersion": beat},
            "status": {
                "conditions": [{"type": "Ready", "status": status, "lastHeartbeatTime": beat}]
            },
        }

    assert fingerprint(strip(node("1"), kind="Node")) == fingerprint(strip(node("2"), kind="Node"))
    assert fingerprint(strip(node("1"), kind="Node")) != fingerprint(
        strip(node("1", "False"), kind="Node")
    )

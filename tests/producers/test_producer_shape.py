"""The raw-JSON shaper against the dict-level reference (``strip.strip_object`` and
``deltas.index_fields``): same object once parsed, same header fields, and the same
body whether the object came as a LIST item or in a WATCH event. Pure, no broker."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from object_strategies import CONFIGS, KINDS, objects

from deltas.index_fields import app_of, labels_of, owners_of
from producers.config import StripConfig
from producers.shape import KindShaper, Shaped
from producers.strip import fingerprint_of_body, strip_object


def shape(
    obj: dict[str, Any], group: str, version: str, kind: str, config: StripConfig
) -> Shaped | None:
    shaper = KindShaper(group, version, kind, config)
    opened = shaper.open(orjson.dumps(obj))
    return None if opened is None else shaper.finish(opened)


@settings(max_examples=400, deadline=None)
@given(objects(), KINDS, CONFIGS)
def test_shaped_body_is_the_stripped_object(
    obj: dict[str, Any], kind: tuple[str, str, str], config: StripConfig
) -> None:
    group, version, name = kind
    shaped = shape(obj, group, version, name, config)
    assert shaped is not None
    reference = strip_object(
        copy.deepcopy(obj), group=group, version=version, kind=name, config=config
    )
    assert orjson.loads(shaped.body) == reference
    assert shaped.labels == labels_of(reference)
    assert shaped.owners == owners_of(reference)
    assert shaped.app == app_of(reference)
    meta = reference["metadata"]
    assert shaped.uid == str(meta.get("uid") or "")
    rv = meta.get("resourceVersion")
    assert shaped.resource_version == (rv if isinstance(rv, str) else "")


@settings(max_examples=200, deadline=None)
@given(objects(), KINDS, CONFIGS)
def test_list_item_and_watch_object_give_the_same_body(
    obj: dict[str, Any], kind: tuple[str, str, str], config: StripConfig
) -> None:
    """LIST items of built-in kinds omit kind/apiVersion; WATCH objects put them first."""
    group, version, name = kind
    listed = shape(obj, group, version, name, config)
    api_version = f"{group}/{version}" if group else version
    watched = shape({"kind": name, "apiVersion": api_version, **obj}, group, version, name, config)
    assert listed is not None and watched is not None
    assert listed.body == watched.body


def test_top_level_and_metadata_keys_are_sorted_and_nested_values_kept_as_served() -> None:
    served = (
        b'{"metadata":{"uid":"u","name":"web","resourceVersion":"7",'
        b'"managedFields":[{"manager":"x"}]},"status":{"z":1,"a":[{"y":2,"b":3}]},'
        b'"spec":{"b":1,"a":2}}'
    )
    shaper = KindShaper("", "v1", "Pod", StripConfig())
    opened = shaper.open(served)
    assert opened is not None
    body = shaper.finish(opened).body
    assert body == (
        b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","resourceVersion":"7",'
        b'"uid":"u"},"spec":{"b":1,"a":2},"status":{"z":1,"a":[{"y":2,"b":3}]}}'
    )


def test_fingerprint_of_a_shaped_body_ignores_the_resource_version() -> None:
    config = StripConfig()
    meta: dict[str, Any] = {"name": "web", "namespace": "shop"}
    base: dict[str, Any] = {"metadata": meta, "spec": {"replicas": 2}}
    one = shape({**base, "metadata": {**meta, "resourceVersion": "1"}}, "", "v1", "Pod", config)
    two = shape({**base, "metadata": {**meta, "resourceVersion": "2"}}, "", "v1", "Pod", config)
    assert one is not None and two is not None
    assert one.body != two.body
    assert fingerprint_of_body(one.body, "1") == fingerprint_of_body(two.body, "2")


def test_what_cannot_be_keyed_is_not_opened() -> None:
    shaper = KindShaper("", "v1", "Pod", StripConfig())
    for served in (
        b"[1,2]",
        b'"text"',
        b"{}",
        b'{"metadata":null}',
        b'{"metadata":[]}',
        b'{"metadata":{"namespace":"a"}}',
        b'{"metadata":{"name":""}}',
    ):
        assert shaper.open(served) is None, served


def test_odd_identity_values_are_stringified_like_the_dict_path() -> None:
    shaper = KindShaper("", "v1", "Pod", StripConfig())
    opened = shaper.open(b'{"metadata":{"name":5,"namespace":null,"uid":7}}')
    assert opened is not None
    assert (opened.name, opened.namespace, opened.text("uid")) == ("5", "", "7")

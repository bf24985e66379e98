"""The raw-JSON shaper against the dict-level reference (``strip.strip_object`` and
``deltas.index_fields``): same object once parsed, same header fields, and the same
body whether the object came as a LIST item or in a WATCH event. Pure, no broker."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from deltas.index_fields import MONIKER_APP, app_of, labels_of, owners_of
from producers.config import StripConfig
from producers.shape import KindShaper, Shaped
from producers.strip import LAST_APPLIED, LEADER_ANNOTATION, fingerprint_of_body, strip_object

TEXT = st.text(max_size=6)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=10,
)
ANNOTATION_KEYS = st.sampled_from([LAST_APPLIED, LEADER_ANNOTATION, MONIKER_APP, "a", "b"])
KINDS = st.sampled_from(
    [("", "v1", "Pod"), ("", "v1", "Secret"), ("", "v1", "Node"), ("apps", "v1", "Deployment")]
)
CONFIGS = st.builds(
    StripConfig,
    keep_last_applied=st.booleans(),
    strip_node_heartbeats=st.booleans(),
    secret_hash_key=st.sampled_from([b"", b"k" * 32]),
)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": draw(st.text(min_size=1, max_size=6)), "uid": draw(TEXT)}
    optional: dict[str, Any] = {
        "namespace": TEXT,
        "resourceVersion": st.one_of(TEXT, st.integers(0, 99)),
        "labels": st.one_of(
            st.dictionaries(TEXT, TEXT, max_size=3), st.dictionaries(TEXT, JSON, max_size=2)
        ),
        "annotations": st.one_of(
            st.dictionaries(ANNOTATION_KEYS, TEXT, max_size=4),
            st.dictionaries(ANNOTATION_KEYS, JSON, max_size=2),
        ),
        "ownerReferences": st.lists(
            st.fixed_dictionaries({"uid": st.one_of(TEXT, st.none())}, optional={"kind": TEXT}),
            max_size=2,
        ),
        "managedFields": st.lists(st.dictionaries(TEXT, JSON, max_size=3), max_size=2),
        "generation": st.integers(0, 9),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            meta[key] = draw(strategy)
    obj: dict[str, Any] = {"metadata": meta}
    status = {
        "phase": draw(TEXT),
        "conditions": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"type": TEXT, "lastHeartbeatTime": TEXT}, optional={"reason": TEXT}
                ),
                max_size=2,
            )
        ),
    }
    extra = {
        "spec": draw(JSON),
        "status": status,
        "data": draw(st.dictionaries(TEXT, TEXT, max_size=3)),
        "stringData": draw(st.dictionaries(TEXT, TEXT, max_size=2)),
        "type": draw(TEXT),
    }
    for key, content in extra.items():
        if draw(st.booleans()):
            obj[key] = content
    return obj


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

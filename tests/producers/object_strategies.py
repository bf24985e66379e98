"""Hypothesis strategies for served Kubernetes objects of odd shapes (shared by the
shaper's tests and the C shaper's)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from deltas.index_fields import MONIKER_APP
from producers.config import StripConfig
from producers.strip import LAST_APPLIED, LEADER_ANNOTATION

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

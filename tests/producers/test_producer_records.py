"""The records the producer builds on its fast path: the same header fields as the
reference helpers in ``deltas.index_fields`` and the same bytes as ``encode(Delta)``."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from deltas import BodyEncoding, Delta, Op, ResourceKey, decode, encode, identity_bytes
from deltas.index_fields import MONIKER_APP, app_of, labels_of, owners_of
from producers.records import RecordFactory, index_fields

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
#: Metadata as a server might send it: usually strings, sometimes not.
LABELS = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4),
    st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=4),
)
OWNER_REFS = st.one_of(
    st.none(),
    st.lists(
        st.dictionaries(st.sampled_from(["uid", "kind", "name"]), JSON_SCALARS, max_size=3),
        max_size=3,
    ),
)
ANNOTATIONS = st.one_of(
    st.none(),
    st.dictionaries(st.one_of(st.just(MONIKER_APP), st.text(max_size=8)), JSON_SCALARS, max_size=3),
)


@st.composite
def metadata(draw: st.DrawFn) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web-1", "namespace": "shop", "uid": "u-1"}
    for key, strategy in (
        ("labels", LABELS),
        ("ownerReferences", OWNER_REFS),
        ("annotations", ANNOTATIONS),
    ):
        value = draw(strategy)
        if value is not None or draw(st.booleans()):
            meta[key] = value
    return meta


@settings(max_examples=300, deadline=None)
@given(metadata())
def test_index_fields_match_the_reference_helpers(meta: dict[str, Any]) -> None:
    obj = {"metadata": meta}
    labels, owners, app = index_fields(meta)
    assert labels == labels_of(obj)
    assert owners == owners_of(obj)
    assert app == app_of(obj)


@settings(max_examples=100, deadline=None)
@given(metadata(), st.integers(0, 2**32))
def test_upsert_record_is_encode_of_the_same_delta(meta: dict[str, Any], seq_start: int) -> None:
    factory = RecordFactory("c1", 3, "s-1")
    factory._seq = seq_start
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta}
    key = ResourceKey("apps", "v1", "Deployment", "shop", "web-1")
    body = b'{"kind":"Deployment"}'
    record = factory.upsert(
        key, identity_bytes("apps", "Deployment", "shop", "web-1"), 1, obj, body, "7",
        0.0, "deployments.apps",
    )  # fmt: skip
    assert record.value is not None
    sent = decode(record.value)
    expected = Delta(
        op=Op.UPSERT,
        cluster="c1",
        key=key,
        uid="u-1",
        resource_version="7",
        seq=seq_start + 1,
        session="s-1",
        event_time_ms=sent.event_time_ms,  # the clock's: the one field not derived
        labels=labels_of(obj),
        owners=owners_of(obj),
        app=app_of(obj),
        body_encoding=BodyEncoding.JSON,
        body=body,
    )
    assert record.value == encode(expected)
    assert record.seq == seq_start + 1 and record.partition == 1

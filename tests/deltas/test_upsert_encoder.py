"""UpsertEncoder, the producer's fast path: byte for byte what ``encode`` makes of the
same UPSERT, and for any input it refuses, the same error class ``encode`` raises."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from delta_strategies import ANY_TEXT, BODIES, MSGPACK_VALUES, U64, deltas
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deltas import (
    DEFAULT_MAX_BODY,
    BodyEncoding,
    Delta,
    DeltaFormatError,
    Op,
    ResourceKey,
    decode,
    encode,
)
from deltas.codec import UpsertEncoder

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=300, deadline=None)

UPSERTS = deltas(ops=st.just(Op.UPSERT))


def encoder_for(delta: Delta, max_body: int = DEFAULT_MAX_BODY) -> UpsertEncoder:
    k = delta.key
    return UpsertEncoder(
        delta.cluster, delta.session, k.group, k.version, k.kind, max_body=max_body
    )


def fast(encoder: UpsertEncoder, delta: Delta, owners: Any = None) -> bytes:
    return encoder.upsert(
        delta.key.namespace,
        delta.key.name,
        delta.uid,
        delta.resource_version,
        delta.seq,
        delta.event_time_ms,
        delta.labels,
        delta.owners if owners is None else owners,
        delta.app,
        delta.body_encoding,
        delta.body,
    )


def outcome(make: Any) -> bytes | type[Exception]:
    """The bytes made, or the class of the error raised."""
    try:
        result: bytes = make()
    except Exception as exc:  # the test compares classes: any exception is an outcome
        return type(exc)
    return result


@FAST
@given(UPSERTS, st.booleans())
def test_same_bytes_as_encode(delta: Delta, owners_as_list: bool) -> None:
    owners = list(delta.owners) if owners_as_list else tuple(delta.owners)
    data = fast(encoder_for(delta), delta, owners)
    assert data == encode(delta)
    assert decode(data) == delta


@FAST
@given(UPSERTS, st.lists(st.tuples(ANY_TEXT, ANY_TEXT, U64, U64), min_size=1, max_size=5))
def test_one_encoder_many_records(delta: Delta, records: list[tuple[str, str, int, int]]) -> None:
    """The encoder keeps state (a reused packer): records in a row stay independent."""
    encoder = encoder_for(delta)
    for name, uid, seq, ts in records:
        assume(name and "\x00" not in name)
        key = ResourceKey(delta.key.group, delta.key.version, delta.key.kind, "ns", name)
        one = Delta(
            op=Op.UPSERT,
            cluster=delta.cluster,
            key=key,
            uid=uid,
            seq=seq,
            session=delta.session,
            event_time_ms=ts,
            labels={"a": name},
            body_encoding=BodyEncoding.JSON,
            body=b"{}",
        )
        assert fast(encoder, one) == encode(one)


#: Values for one field of an otherwise valid UPSERT: valid ones, wrong types, out of
#: range numbers, NUL characters, lone surrogates (not UTF-8).
HOSTILE = st.one_of(
    MSGPACK_VALUES,
    st.sampled_from(
        [
            "",
            "a\x00b",
            "\ud800",
            -1,
            2**64,
            True,
            1.5,
            None,
            b"bytes",
            bytearray(b"x"),
            {"k": 1},
            {1: "v"},
            {"k": "\ud800"},
            ["\ud800"],
            [1],
            ("a", 2),
            BodyEncoding.NONE,
            BodyEncoding.JSON,
            BodyEncoding.MSGPACK,
            1,
        ]
    ),
)
FIELDS = (
    "namespace",
    "name",
    "uid",
    "resource_version",
    "seq",
    "event_time_ms",
    "labels",
    "owners",
    "app",
    "body_encoding",
    "body",
)


@FUZZ
@given(UPSERTS, st.sampled_from(FIELDS), HOSTILE)
def test_hostile_field_gives_what_encode_gives(delta: Delta, field: str, value: Any) -> None:
    args: dict[str, Any] = {
        "namespace": delta.key.namespace,
        "name": delta.key.name,
        "uid": delta.uid,
        "resource_version": delta.resource_version,
        "seq": delta.seq,
        "event_time_ms": delta.event_time_ms,
        "labels": dict(delta.labels),
        "owners": delta.owners,
        "app": delta.app,
        "body_encoding": delta.body_encoding,
        "body": delta.body,
    }
    args[field] = value
    encoder = encoder_for(delta)
    key = ResourceKey(
        delta.key.group, delta.key.version, delta.key.kind, args["namespace"], args["name"]
    )
    reference = Delta(
        op=Op.UPSERT,
        cluster=delta.cluster,
        key=key,
        uid=args["uid"],
        resource_version=args["resource_version"],
        seq=args["seq"],
        session=delta.session,
        event_time_ms=args["event_time_ms"],
        labels=args["labels"],
        owners=tuple(args["owners"])
        if isinstance(args["owners"], list | tuple)
        else args["owners"],
        app=args["app"],
        body_encoding=args["body_encoding"],
        body=args["body"],
    )
    got = outcome(lambda: encoder.upsert(**args))
    expected = outcome(lambda: encode(reference))
    assert got == expected
    if isinstance(got, type):
        assert got is DeltaFormatError
    # A refused record leaves the encoder usable.
    assert fast(encoder, delta) == encode(delta)


@FAST
@given(UPSERTS, st.sampled_from(["cluster", "session", "group", "version", "kind"]), HOSTILE)
def test_hostile_kind_fields_fail_at_construction_as_encode_would(
    delta: Delta, field: str, value: Any
) -> None:
    parts: dict[str, Any] = {
        "cluster": delta.cluster,
        "session": delta.session,
        "group": delta.key.group,
        "version": delta.key.version,
        "kind": delta.key.kind,
    }
    parts[field] = value
    reference = Delta(
        op=Op.UPSERT,
        cluster=parts["cluster"],
        key=ResourceKey(
            parts["group"], parts["version"], parts["kind"], delta.key.namespace, delta.key.name
        ),
        uid=delta.uid,
        resource_version=delta.resource_version,
        seq=delta.seq,
        session=parts["session"],
        event_time_ms=delta.event_time_ms,
        labels=delta.labels,
        owners=delta.owners,
        app=delta.app,
        body_encoding=delta.body_encoding,
        body=delta.body,
    )
    expected = outcome(lambda: encode(reference))
    got = outcome(
        lambda: fast(
            UpsertEncoder(
                parts["cluster"], parts["session"], parts["group"], parts["version"], parts["kind"]
            ),
            reference,
        )
    )
    if isinstance(expected, bytes):
        assert got == expected
    else:
        assert got is DeltaFormatError and expected is DeltaFormatError


@FAST
@given(UPSERTS, BODIES)
def test_body_size_limit_is_the_encoders(delta: Delta, body: bytes) -> None:
    limit = 1000
    big = Delta(**{**{f: getattr(delta, f) for f in delta.__slots__}, "body": body})
    got = outcome(lambda: fast(encoder_for(big, max_body=limit), big))
    assert got == outcome(lambda: encode(big, max_body=limit))


def test_invalid_cluster_name_is_refused_once_at_construction() -> None:
    with pytest.raises(DeltaFormatError, match="DNS label"):
        UpsertEncoder("Not_A_Label", "s", "", "v1", "Pod")


# -- DELETE records ------------------------------------------------------------------

DELETES = deltas(ops=st.just(Op.DELETE))
DELETE_FIELDS = ("namespace", "name", "uid", "resource_version", "seq", "event_time_ms")


def delete_of(delta: Delta, **changes: Any) -> tuple[dict[str, Any], Delta]:
    """``delete()``'s arguments for ``delta`` (with ``changes``) and the Delta that
    ``encode`` gets for them: a producer's DELETE has no labels, owners or app."""
    args: dict[str, Any] = {
        "namespace": delta.key.namespace,
        "name": delta.key.name,
        "uid": delta.uid,
        "resource_version": delta.resource_version,
        "seq": delta.seq,
        "event_time_ms": delta.event_time_ms,
        **changes,
    }
    k = delta.key
    reference = Delta(
        op=Op.DELETE,
        cluster=delta.cluster,
        key=ResourceKey(k.group, k.version, k.kind, args["namespace"], args["name"]),
        uid=args["uid"],
        resource_version=args["resource_version"],
        seq=args["seq"],
        session=delta.session,
        event_time_ms=args["event_time_ms"],
    )
    return args, reference


@FAST
@given(DELETES)
def test_delete_same_bytes_as_encode(delta: Delta) -> None:
    args, reference = delete_of(delta)
    data = encoder_for(delta).delete(**args)
    assert data == encode(reference)
    assert decode(data) == reference


@FAST
@given(UPSERTS, DELETES)
def test_deletes_and_upserts_in_a_row_stay_independent(upsert: Delta, other: Delta) -> None:
    """One encoder, so one packer, makes both ops."""
    k = upsert.key
    delete = dataclasses.replace(
        other,
        cluster=upsert.cluster,
        session=upsert.session,
        key=ResourceKey(k.group, k.version, k.kind, other.key.namespace, other.key.name),
    )
    args, reference = delete_of(delete)
    encoder = encoder_for(upsert)
    assert fast(encoder, upsert) == encode(upsert)
    assert encoder.delete(**args) == encode(reference)
    assert fast(encoder, upsert) == encode(upsert)


@FUZZ
@given(DELETES, st.sampled_from(DELETE_FIELDS), HOSTILE)
def test_hostile_delete_field_gives_what_encode_gives(delta: Delta, field: str, value: Any) -> None:
    args, reference = delete_of(delta, **{field: value})
    encoder = encoder_for(delta)
    got = outcome(lambda: encoder.delete(**args))
    assert got == outcome(lambda: encode(reference))
    if isinstance(got, type):
        assert got is DeltaFormatError
    # A refused record leaves the encoder usable.
    args, reference = delete_of(delta)
    assert encoder.delete(**args) == encode(reference)

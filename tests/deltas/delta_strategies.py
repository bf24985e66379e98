"""Hypothesis strategies for delta records, shared by the wire-format tests.

Imported as a sibling module (tests/deltas has no ``__init__.py``: that would make
pytest import this directory as a package named ``deltas`` and shadow the real one).
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
from hypothesis import strategies as st

from deltas import (
    DEFAULT_MAX_BODY,
    BodyEncoding,
    Delta,
    DigestMarker,
    Op,
    RelistMarker,
    ResourceKey,
)
from deltas.codec import FORMAT_VERSION, MAGIC, PREFIX, PREFIX_SIZE

U64 = st.integers(min_value=0, max_value=2**64 - 1)

#: Any Unicode but NUL (the key separator) and lone surrogates (not UTF-8), plus
#: hand-picked non-ASCII and emoji so they show up in every run.
KEY_TEXT = st.one_of(
    st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"])),
    st.sampled_from(["名前", "🚀-pod", "niño", "Ωmega", "👩‍👩‍👧", "a" * 253]),
)
NON_EMPTY_KEY_TEXT = KEY_TEXT.filter(bool)
ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]))

CLUSTER_NAMES = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)

#: Mostly small bodies; sometimes 1 MiB and exactly the default maximum (4 MiB).
BODIES = st.one_of(
    st.binary(max_size=512),
    st.sampled_from([1024 * 1024, DEFAULT_MAX_BODY]).map(lambda n: bytes(range(256)) * (n // 256)),
)

LABELS = st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=8)
OWNERS = st.lists(ANY_TEXT, max_size=4).map(tuple)


@st.composite
def resource_keys(draw: st.DrawFn) -> ResourceKey:
    return ResourceKey(
        group=draw(KEY_TEXT),
        version=draw(NON_EMPTY_KEY_TEXT),
        kind=draw(NON_EMPTY_KEY_TEXT),
        namespace=draw(st.one_of(st.just(""), KEY_TEXT)),  # "" = cluster-scoped
        name=draw(NON_EMPTY_KEY_TEXT),
    )


OPS = st.sampled_from(Op)


@st.composite
def deltas(
    draw: st.DrawFn,
    bodies: st.SearchStrategy[bytes] = BODIES,
    ops: st.SearchStrategy[Op] = OPS,
) -> Delta:
    """Any valid delta: every op (or those of ``ops``: drawn, not filtered, so tests of
    one op do not fail Hypothesis' filter_too_much check), with the fields each op
    requires."""
    op = draw(ops)
    cluster = draw(CLUSTER_NAMES)
    seq = draw(U64)
    session = draw(ANY_TEXT)
    event_time_ms = draw(U64)
    if op is Op.UPSERT or op is Op.DELETE:
        upsert = op is Op.UPSERT
        encoding = (
            draw(st.sampled_from([BodyEncoding.JSON, BodyEncoding.MSGPACK]))
            if upsert
            else BodyEncoding.NONE
        )
        return Delta(
            op=op,
            cluster=cluster,
            key=draw(resource_keys()),
            uid=draw(ANY_TEXT),
            resource_version=draw(ANY_TEXT),
            seq=seq,
            session=session,
            event_time_ms=event_time_ms,
            labels=draw(LABELS),
            owners=draw(OWNERS),
            app=draw(ANY_TEXT),
            body_encoding=encoding,
            body=draw(bodies) if upsert else b"",
        )
    if op is Op.DIGEST:
        return Delta(
            op=op,
            cluster=cluster,
            key=ResourceKey("", "", "", "", ""),
            seq=seq,
            session=session,
            event_time_ms=event_time_ms,
            digest=DigestMarker(
                partition=draw(st.integers(0, 2**31 - 1)), count=draw(U64), hash=draw(U64)
            ),
        )
    return Delta(
        op=op,
        cluster=cluster,
        key=ResourceKey(draw(KEY_TEXT), draw(KEY_TEXT), draw(NON_EMPTY_KEY_TEXT), "", ""),
        seq=seq,
        session=session,
        event_time_ms=event_time_ms,
        relist=RelistMarker(relist_id=draw(ANY_TEXT), full=draw(st.booleans())),
    )


#: Values msgpack can pack, for building hostile headers.
MSGPACK_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | ANY_TEXT
    | st.binary(max_size=16),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4)
    ),
    max_leaves=8,
)


def fields_of(record: bytes) -> list[Any]:
    """The raw header array of a record, to tamper with."""
    (header_len,) = struct.unpack_from(">I", record, 3)
    fields: list[Any] = msgpack.unpackb(record[PREFIX_SIZE : PREFIX_SIZE + header_len])
    return fields


def record_of(fields: list[Any], body: bytes = b"", version: int = FORMAT_VERSION) -> bytes:
    """A record with this header array (packed as given, even if invalid) and body."""
    packed = msgpack.packb(fields, use_bin_type=True)
    return PREFIX.pack(MAGIC, version, len(packed)) + packed + body

"""deltas._speedups (the C header decoder) against the Python reference decoder.

The C decoder may decline any record (None: the Python decoder then reads it), but
what it accepts must decode to exactly the Header the reference builds, and it must
decline everything the reference refuses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import msgpack
import pytest
from delta_strategies import MSGPACK_VALUES, deltas, fields_of, record_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltas import (
    DEFAULT_MAX_BODY,
    BodyEncoding,
    Delta,
    DeltaFormatError,
    Op,
    ResourceKey,
    _speedups,
)
from deltas.codec import (
    FORMAT_VERSION,
    HEADER_FIELDS,
    MAGIC,
    PREFIX,
    decode_header,
    decode_header_py,
    encode,
)

F_BODY_ENCODING = HEADER_FIELDS.index("body_encoding")
F_BODY_LENGTH = HEADER_FIELDS.index("body_length")
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

POD = Delta(
    op=Op.UPSERT,
    cluster="prod-eu-1",
    key=ResourceKey("apps", "v1", "Deployment", "default", "web"),
    uid="0b6f5c1e-7d1a-4c43-9f3e-2b1a7c9d8e01",
    resource_version="12345",
    seq=2**64 - 1,
    session="s-1",
    event_time_ms=1_700_000_000_000,
    labels={"app": "web", "tier": "frontend", "é": "ü🚀"},
    owners=("rs-uid-1", "rs-uid-2"),
    app="web",
    body_encoding=BodyEncoding.MSGPACK,
    body=b"\x80",
)
POD_BYTES = encode(POD)
GONE = Delta(
    op=Op.DELETE,
    cluster="prod-eu-1",
    key=ResourceKey("", "v1", "Pod", "default", "web-1"),
    uid="0b6f5c1e-7d1a-4c43-9f3e-2b1a7c9d8e02",
    resource_version="12346",
    seq=7,
    session="s-1",
    event_time_ms=1_700_000_000_001,
)
GONE_BYTES = encode(GONE)


def assert_agrees(data: bytes, max_body: int = DEFAULT_MAX_BODY) -> Any:
    """C accepts -> the reference gives an equal Header; the reference refuses -> C declines."""
    fast = _speedups.decode_object_header(data, max_body)
    try:
        reference = decode_header_py(data, max_body=max_body)
    except DeltaFormatError:
        assert fast is None, "the C decoder accepted a record the reference refuses"
        return None
    if fast is not None:
        assert type(fast) is type(reference)
        assert fast == reference  # decodes fast.labels if the C decoder left them as bytes
        fields = dict(vars(fast))
        raw = fields.pop("_labels_raw", None)
        objkey = fields.pop("_objkey")
        assert fields == vars(reference)  # every field, also those eq might skip
        assert raw is None or msgpack.unpackb(raw) == reference.labels
        k = reference.key
        assert objkey == b"\x00".join(
            p.encode() for p in (reference.cluster, k.group, k.kind, k.namespace, k.name)
        )
        assert type(fast.key) is ResourceKey and fast.key == reference.key
        assert type(fast.owners) is tuple and type(fast.labels) is dict
        assert fast.op is reference.op and fast.op in (Op.UPSERT, Op.DELETE)
        assert fast.body_encoding is reference.body_encoding
    return fast


def test_the_extension_is_built_and_used() -> None:
    # decode_header must take the C path for the common record, or the consumer is slow
    # with no visible sign.
    fast = _speedups.decode_object_header(POD_BYTES, DEFAULT_MAX_BODY)
    assert fast is not None
    assert decode_header(POD_BYTES) == fast == decode_header_py(POD_BYTES)
    assert _speedups.__file__.endswith(".so")


def test_repeated_strings_come_from_the_cache_and_stay_right() -> None:
    first = decode_header(POD_BYTES)
    second = decode_header(POD_BYTES)
    # cached: the same str objects, so their hashes are computed once
    assert second.cluster is first.cluster and second.key.kind is first.key.kind
    assert second.session is first.session and second.owners[0] is first.owners[0]
    # not cached: unique per object
    assert second.uid == first.uid and second.key.name == first.key.name
    # many distinct strings share the 1,024 slots; non-ASCII ones are never cached
    for i in range(3000):
        namespace = f"ns-{i}" if i % 3 else f"ñs-{i}"
        delta = replace(POD, key=replace(POD.key, namespace=namespace), app=f"a{i % 7}")
        for _ in range(2):
            header = assert_agrees(encode(delta))
            assert header is not None and header.key.namespace == namespace
            assert header.app == f"a{i % 7}"


@FUZZ
@given(deltas(bodies=st.binary(max_size=64)))
def test_every_valid_upsert_and_delete_is_accepted_and_others_declined(delta: Delta) -> None:
    data = encode(delta)
    fast = assert_agrees(data)
    if delta.op in (Op.UPSERT, Op.DELETE):
        assert fast is not None
    else:
        assert fast is None  # control records: the Python decoder reads them


@FUZZ
@given(st.integers(0, len(HEADER_FIELDS) - 1), MSGPACK_VALUES)
def test_one_hostile_field(index: int, value: Any) -> None:
    fields = fields_of(POD_BYTES)
    fields[index] = value
    body_length = fields[HEADER_FIELDS.index("body_length")]
    body = b"\x80" * body_length if type(body_length) is int and 0 <= body_length < 2**16 else b""
    assert_agrees(record_of(fields, body))


@FUZZ
@given(st.integers(0, len(HEADER_FIELDS) - 1), MSGPACK_VALUES)
def test_one_hostile_field_of_a_delete(index: int, value: Any) -> None:
    fields = fields_of(GONE_BYTES)
    fields[index] = value
    assert_agrees(record_of(fields, b""))


def test_a_delete_takes_the_c_path() -> None:
    fast = _speedups.decode_object_header(GONE_BYTES, DEFAULT_MAX_BODY)
    assert fast is not None and fast.op is Op.DELETE
    assert fast.body_encoding is BodyEncoding.NONE and fast.body_length == 0
    assert decode_header(GONE_BYTES) == fast == decode_header_py(GONE_BYTES)


def delete_patched(index: int, value: Any, body: bytes = b"") -> bytes:
    fields = fields_of(GONE_BYTES)
    fields[index] = value
    return record_of(fields, body)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(delete_patched(F_BODY_ENCODING, 1), id="delete-with-json-encoding"),
        pytest.param(delete_patched(F_BODY_LENGTH, 2, b"{}"), id="delete-with-a-body"),
        pytest.param(GONE_BYTES + b"{}", id="delete-with-trailing-bytes"),
        pytest.param(delete_patched(HEADER_FIELDS.index("name"), ""), id="delete-empty-name"),
        pytest.param(delete_patched(HEADER_FIELDS.index("kind"), "K\x00"), id="delete-nul-kind"),
    ],
)
def test_deletes_the_reference_refuses_are_declined(data: bytes) -> None:
    with pytest.raises(DeltaFormatError):
        decode_header_py(data)
    assert _speedups.decode_object_header(data, DEFAULT_MAX_BODY) is None


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(POD_BYTES) - 1), st.integers(1, 255)), min_size=1, max_size=4
    )
)
def test_flipped_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(POD_BYTES)
    for position, mask in flips:
        data[position] ^= mask
    assert_agrees(bytes(data))


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_a_valid_prefix(tail: bytes) -> None:
    assert_agrees(PREFIX.pack(MAGIC, FORMAT_VERSION, len(tail)) + tail)


def test_every_truncation_and_extension_is_declined() -> None:
    for cut in range(len(POD_BYTES)):
        assert _speedups.decode_object_header(POD_BYTES[:cut], DEFAULT_MAX_BODY) is None
    assert _speedups.decode_object_header(POD_BYTES + b"x", DEFAULT_MAX_BODY) is None


def patched(index: int, value: Any) -> bytes:
    fields = fields_of(POD_BYTES)
    fields[index] = value
    return record_of(fields, POD.body)


F = HEADER_FIELDS.index


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(patched(F("cluster"), "-bad"), id="cluster-leading-dash"),
        pytest.param(patched(F("cluster"), "bad-"), id="cluster-trailing-dash"),
        pytest.param(patched(F("cluster"), "Prod"), id="cluster-uppercase"),
        pytest.param(patched(F("cluster"), "a" * 64), id="cluster-too-long"),
        pytest.param(patched(F("cluster"), ""), id="cluster-empty"),
        pytest.param(patched(F("name"), "we\x00b"), id="nul-in-name"),
        pytest.param(patched(F("group"), "a\x00"), id="nul-in-group"),
        pytest.param(patched(F("name"), ""), id="empty-name"),
        pytest.param(patched(F("kind"), ""), id="empty-kind"),
        pytest.param(patched(F("version"), ""), id="empty-version"),
        pytest.param(patched(F("uid"), b"bin"), id="bin-instead-of-str"),
        pytest.param(patched(F("seq"), -1), id="negative-seq"),
        pytest.param(patched(F("body_encoding"), 0), id="upsert-without-encoding"),
        pytest.param(patched(F("body_encoding"), 3), id="unknown-encoding"),
        pytest.param(patched(F("control"), ["r", True]), id="control-on-upsert"),
        pytest.param(patched(F("labels"), {"a": 1}), id="label-value-not-str"),
        pytest.param(patched(F("owners"), ["x", 2]), id="owner-not-str"),
        # invalid UTF-8 in a str (fixstr of 2 bytes: 0xff 0xfe)
        pytest.param(POD_BYTES.replace(b"\xa3web", b"\xa3w\xff\xfe", 1), id="bad-utf8"),
        # a map claiming 2**32-1 entries in a tiny header: declined before allocating
        pytest.param(
            POD_BYTES.replace(b"\x83\xa3app", b"\xdf\xff\xff\xff\xff\xa3app", 1),
            id="huge-map-count",
        ),
        pytest.param(
            POD_BYTES.replace(b"\x92\xa8rs-uid-1", b"\xdd\xff\xff\xff\xff\xa8rs-uid-1", 1),
            id="huge-array-count",
        ),
    ],
)
def test_records_the_reference_refuses_are_declined(data: bytes) -> None:
    assert data != POD_BYTES
    with pytest.raises(DeltaFormatError):
        decode_header_py(data)
    assert _speedups.decode_object_header(data, DEFAULT_MAX_BODY) is None


def test_body_over_the_maximum_is_declined() -> None:
    assert _speedups.decode_object_header(POD_BYTES, len(POD.body)) is not None
    assert _speedups.decode_object_header(POD_BYTES, len(POD.body) - 1) is None


def test_valid_but_unusual_encodings_are_left_to_the_reference() -> None:
    # A foreign encoder may write a small positive int as int8 (0xd0): valid, and the
    # reference reads it; the C decoder declines rather than widen what it trusts.
    fields = fields_of(POD_BYTES)
    packed = msgpack.packb(fields, use_bin_type=True)
    assert packed[1:3] == b"\x00\x12" and packed[3] == 0x01  # array16 of 18, op fixint 1
    odd = packed[:3] + b"\xd0\x01" + packed[4:]
    data = PREFIX.pack(MAGIC, FORMAT_VERSION, len(odd)) + odd + POD.body
    assert _speedups.decode_object_header(data, DEFAULT_MAX_BODY) is None
    header = decode_header(data)
    assert header == decode_header_py(data)
    assert header.op is Op.UPSERT and header.body_offset == decode_header(POD_BYTES).body_offset + 1


def test_memoryviews_take_the_python_path() -> None:
    assert _speedups.decode_object_header(memoryview(POD_BYTES), DEFAULT_MAX_BODY) is None  # type: ignore[arg-type]
    assert decode_header(memoryview(POD_BYTES)) == decode_header_py(POD_BYTES)


def test_repeated_label_keys_keep_the_last_value_like_msgpack() -> None:
    # msgpack maps may repeat a key: the C decoder leaves such a header to the Python
    # one, which keeps the last value, as msgpack does.
    fields = fields_of(POD_BYTES)
    packed = msgpack.packb(fields, use_bin_type=True)
    dup = packed.replace(b"\x83\xa3app\xa3web", b"\x84\xa3app\xa3old\xa3app\xa3web", 1)
    assert dup != packed
    data = PREFIX.pack(MAGIC, FORMAT_VERSION, len(dup)) + dup + POD.body
    assert assert_agrees(data) is None
    header = decode_header(data)
    assert header.labels["app"] == "web" and len(header.labels) == 3


def test_the_c_decoder_leaves_labels_as_bytes_until_they_are_used() -> None:
    header = _speedups.decode_object_header(POD_BYTES, DEFAULT_MAX_BODY)
    assert header is not None
    assert "labels" not in vars(header)
    assert header.labels_source == msgpack.packb(dict(POD.labels))
    labels = header.labels
    assert labels == POD.labels and "labels" in vars(header)
    assert header.labels is labels  # decoded once
    assert header == decode_header_py(POD_BYTES)
    reference = decode_header_py(POD_BYTES)
    assert reference.labels_source == POD.labels  # the Python decoder's dict
    with pytest.raises(AttributeError, match="no attribute 'lables'"):
        getattr(header, "lables")  # noqa: B009 - other names stay errors


def _with_labels_map(raw_map: bytes) -> bytes:
    """POD_BYTES with its labels field replaced by ``raw_map`` (msgpack bytes)."""
    fields = fields_of(POD_BYTES)
    fields[HEADER_FIELDS.index("labels")] = "@labels@"
    header = msgpack.packb(fields).replace(msgpack.packb("@labels@"), raw_map, 1)
    return PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header + POD.body


@pytest.mark.parametrize(
    "raw_map, accepted",
    [
        (b"\x82\xa1a\xa11\xa1a\xa12", False),  # a repeated key: the reference's last-wins
        (b"\x81\xa1a\xa2\xc3\x28", False),  # a value that is not UTF-8
        (b"\x81\xa2\xed\xa0\xa11", False),  # a key that is a surrogate
        (b"\x81\xa1a\x01", False),  # a value that is not a str
        (b"\x80", True),
        (msgpack.packb({f"k{i}": "v" for i in range(64)}), True),
        (msgpack.packb({f"k{i}": "v" for i in range(65)}), True),  # decoded at once
    ],
)
def test_labels_the_c_decoder_declines_or_accepts(raw_map: bytes, accepted: bool) -> None:
    data = _with_labels_map(raw_map)
    fast = _speedups.decode_object_header(data, DEFAULT_MAX_BODY)
    assert (fast is not None) == accepted
    assert_agrees(data)
    if fast is not None:
        assert fast.labels == msgpack.unpackb(raw_map)

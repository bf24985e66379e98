"""The delta record codec: round trips, hostile input, and one error message per fault."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from delta_strategies import MSGPACK_VALUES, deltas, fields_of, record_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deltas import (
    DEFAULT_MAX_BODY,
    FORMAT_VERSION,
    BodyEncoding,
    Delta,
    DeltaFormatError,
    DigestMarker,
    KubedeltaError,
    Op,
    RelistMarker,
    ResourceKey,
    decode,
    decode_header,
    decode_object,
    encode,
    encode_object,
)
from deltas.codec import (
    HEADER_FIELDS,
    MAGIC,
    PREFIX,
    PREFIX_SIZE,
    _checked_header,
    _header_from_fields,
)

# Large bodies make single examples slow (copies of 4 MiB): no per-example deadline.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings(max_examples=150, deadline=None)

POD_KEY = ResourceKey("", "v1", "Pod", "default", "web-0")
KIND_KEY = ResourceKey("", "v1", "Pod", "", "")
SAMPLE = Delta(
    op=Op.UPSERT,
    cluster="prod-eu-1",
    key=POD_KEY,
    uid="0b6f5c1e-7d1a-4c43-9f3e-2b1a7c9d8e01",
    resource_version="12345",
    seq=7,
    session="s-1",
    event_time_ms=1_700_000_000_000,
    labels={"app": "web", "tier": "frontend"},
    owners=("rs-uid-1",),
    app="web",
    body_encoding=BodyEncoding.JSON,
    body=b'{"kind":"Pod"}',
)
SAMPLE_BYTES = encode(SAMPLE)


def sample_fields(**changes: Any) -> list[Any]:
    fields = fields_of(SAMPLE_BYTES)
    for name, value in changes.items():
        fields[HEADER_FIELDS.index(name)] = value
    return fields


def decode_or_format_error(data: bytes) -> Delta | None:
    """Decode, turning DeltaFormatError into None; any other exception fails the test."""
    try:
        delta = decode(data)
    except DeltaFormatError as exc:
        assert str(exc), "errors must say what is wrong"
        return None
    # Whatever decodes is a valid delta: it re-encodes, and that decodes to itself.
    assert decode(encode(delta)) == delta
    return delta


# -- round trips --------------------------------------------------------------------------


@FAST
@given(deltas())
def test_encode_then_decode_returns_the_same_delta(delta: Delta) -> None:
    data = encode(delta)
    assert decode(data) == delta
    assert decode(memoryview(data)) == delta


@FAST
@given(deltas())
def test_decode_header_agrees_with_decode(delta: Delta) -> None:
    data = encode(delta)
    header = decode_header(data)
    full = decode(data)
    assert header.op is full.op
    assert header.cluster == full.cluster
    assert header.key == full.key
    assert header.identity() == full.key.identity_bytes()
    assert header.uid == full.uid
    assert header.resource_version == full.resource_version
    assert header.seq == full.seq
    assert header.session == full.session
    assert header.event_time_ms == full.event_time_ms
    assert header.labels == full.labels
    assert header.owners == full.owners
    assert header.app == full.app
    assert header.body_encoding is full.body_encoding
    assert header.relist == full.relist
    assert header.digest == full.digest
    assert header.body_length == len(full.body)
    assert header.body_offset + header.body_length == len(data)
    assert data[header.body_offset :] == full.body


def test_round_trip_of_non_ascii_cluster_scoped_object_with_one_mib_body() -> None:
    delta = Delta(
        op=Op.UPSERT,
        cluster="c1",
        key=ResourceKey("storage.k8s.io", "v1", "StorageClass", "", "schnell-💾-名前"),
        labels={"größe": "groß", "🚀": "✓"},
        owners=("ü", "🙂"),
        body_encoding=BodyEncoding.MSGPACK,
        body=b"\x00\xff" * (512 * 1024),
    )
    data = encode(delta)
    assert decode(data) == delta
    assert decode_header(data).key.namespace == ""


def test_body_of_exactly_the_maximum_round_trips() -> None:
    delta = Delta(
        op=Op.UPSERT,
        cluster="c1",
        key=POD_KEY,
        body_encoding=BodyEncoding.JSON,
        body=b"x" * DEFAULT_MAX_BODY,
    )
    assert decode(encode(delta)) == delta


def test_header_exposes_the_body_without_copying_it() -> None:
    header = decode_header(memoryview(SAMPLE_BYTES))
    assert SAMPLE_BYTES[header.body_offset :] == SAMPLE.body
    assert header.body_offset == len(SAMPLE_BYTES) - len(SAMPLE.body)


@pytest.mark.parametrize("encoding", [BodyEncoding.JSON, BodyEncoding.MSGPACK])
def test_objects_round_trip_through_bodies(encoding: BodyEncoding) -> None:
    obj = {"kind": "Pod", "metadata": {"name": "ü-🚀", "labels": {"b": "2", "a": "1"}}, "n": [1]}
    assert decode_object(encode_object(obj, encoding), encoding) == obj


def test_json_bodies_are_canonical() -> None:
    a = encode_object({"b": 1, "a": {"y": 2, "x": 1}}, BodyEncoding.JSON)
    b = encode_object({"a": {"x": 1, "y": 2}, "b": 1}, BodyEncoding.JSON)
    assert a == b == b'{"a":{"x":1,"y":2},"b":1}'


# -- hostile input: nothing but DeltaFormatError -------------------------------------------


@FUZZ
@given(st.binary(max_size=256))
def test_arbitrary_bytes_raise_only_format_errors(data: bytes) -> None:
    decode_or_format_error(data)


@FUZZ
@given(st.binary(max_size=256), st.integers(0, 2**32 - 1), st.booleans())
def test_arbitrary_bytes_after_a_valid_prefix(tail: bytes, header_len: int, honest: bool) -> None:
    length = len(tail) if honest else header_len
    decode_or_format_error(PREFIX.pack(MAGIC, FORMAT_VERSION, length) + tail)


@FUZZ
@given(st.lists(MSGPACK_VALUES, min_size=len(HEADER_FIELDS), max_size=len(HEADER_FIELDS)))
def test_arbitrary_msgpack_header_fields(fields: list[Any]) -> None:
    decode_or_format_error(record_of(fields))


@FUZZ
@given(st.integers(0, len(HEADER_FIELDS) - 1), MSGPACK_VALUES)
def test_one_hostile_field_in_a_valid_header(index: int, value: Any) -> None:
    fields = fields_of(SAMPLE_BYTES)
    fields[index] = value
    decode_or_format_error(record_of(fields, SAMPLE.body))


def outcome(build: Any, fields: list[Any], size: int) -> object:
    try:
        return build(fields, 0, size, DEFAULT_MAX_BODY)
    except DeltaFormatError as exc:
        return str(exc)


@FUZZ
@given(st.integers(0, len(HEADER_FIELDS) - 1), MSGPACK_VALUES, st.booleans())
def test_fast_and_reference_header_validation_agree(index: int, value: Any, upsert: bool) -> None:
    fields = fields_of(encode(SAMPLE if upsert else RELIST))
    fields[index] = value
    body_length = fields[HEADER_FIELDS.index("body_length")]
    size = body_length if type(body_length) is int and 0 <= body_length < 2**20 else 0
    assert outcome(_header_from_fields, fields, size) == outcome(_checked_header, fields, size)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, len(SAMPLE_BYTES) - 1), st.integers(1, 255)),
        min_size=1,
        max_size=4,
    )
)
def test_records_with_flipped_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SAMPLE_BYTES)
    for position, mask in flips:
        data[position] ^= mask
    decode_or_format_error(bytes(data))


@FAST
@given(deltas(bodies=st.binary(max_size=64)), st.data())
def test_truncation_at_every_length_is_detected(delta: Delta, data: st.DataObject) -> None:
    record = encode(delta)
    cut = data.draw(st.integers(0, len(record) - 1))
    with pytest.raises(DeltaFormatError, match="record truncated"):
        decode(record[:cut])


def test_every_truncation_of_the_sample_is_detected() -> None:
    for cut in range(len(SAMPLE_BYTES)):
        with pytest.raises(DeltaFormatError):
            decode(SAMPLE_BYTES[:cut])


@FAST
@given(deltas(bodies=st.binary(max_size=64)), st.binary(min_size=1, max_size=64))
def test_trailing_garbage_is_detected(delta: Delta, garbage: bytes) -> None:
    with pytest.raises(DeltaFormatError, match=f"{len(garbage)} bytes of trailing garbage"):
        decode(encode(delta) + garbage)


# -- explicit faults, each with a message that says what is wrong ---------------------------


def test_format_errors_are_kubedelta_errors_and_not_retriable() -> None:
    assert issubclass(DeltaFormatError, KubedeltaError)
    assert issubclass(DeltaFormatError, ValueError)
    assert DeltaFormatError.retriable is False


def test_truncated_prefix() -> None:
    with pytest.raises(DeltaFormatError, match=r"record truncated: 3 bytes, the prefix alone is 7"):
        decode(SAMPLE_BYTES[:3])


def test_truncated_header() -> None:
    with pytest.raises(
        DeltaFormatError, match=r"record truncated: header says \d+ header bytes, 2"
    ):
        decode(SAMPLE_BYTES[: PREFIX_SIZE + 2])


def test_truncated_body() -> None:
    with pytest.raises(
        DeltaFormatError, match=r"record truncated: body needs 14 bytes, 13 present"
    ):
        decode(SAMPLE_BYTES[:-1])


def test_trailing_garbage() -> None:
    with pytest.raises(DeltaFormatError, match="3 bytes of trailing garbage after the body"):
        decode(SAMPLE_BYTES + b"xyz")


def test_bad_magic() -> None:
    with pytest.raises(DeltaFormatError, match=r"bad magic b'XD', expected b'KD'"):
        decode(b"X" + SAMPLE_BYTES[1:])


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_format_version(version: int) -> None:
    data = SAMPLE_BYTES[:2] + bytes([version]) + SAMPLE_BYTES[3:]
    with pytest.raises(
        DeltaFormatError, match=f"unknown format version {version}, this build reads version 1"
    ):
        decode(data)


def test_header_that_is_not_msgpack() -> None:
    with pytest.raises(DeltaFormatError, match="header is not valid msgpack"):
        decode(PREFIX.pack(MAGIC, FORMAT_VERSION, 1) + b"\xc1")


def test_header_with_extra_bytes_after_the_array() -> None:
    packed = msgpack.packb(fields_of(SAMPLE_BYTES)) + b"\x00"
    data = PREFIX.pack(MAGIC, FORMAT_VERSION, len(packed)) + packed + SAMPLE.body
    with pytest.raises(DeltaFormatError, match="header is not valid msgpack"):
        decode(data)


def test_header_that_is_not_an_array() -> None:
    with pytest.raises(DeltaFormatError, match="header must be a msgpack array, got dict"):
        decode(record_of({"op": 1}))  # type: ignore[arg-type]


@pytest.mark.parametrize("count", [0, 1, len(HEADER_FIELDS) - 1, len(HEADER_FIELDS) + 1])
def test_header_with_the_wrong_number_of_fields(count: int) -> None:
    fields = (sample_fields() * 2)[:count]
    with pytest.raises(DeltaFormatError, match=f"header has {count} fields, expected 18"):
        decode(record_of(fields, SAMPLE.body))


STRING_FIELDS = [
    "cluster", "group", "version", "kind", "namespace", "name", "uid",
    "resource_version", "session", "app",
]  # fmt: skip
INT_FIELDS = ["op", "seq", "event_time_ms", "body_encoding", "body_length"]


@pytest.mark.parametrize("field", STRING_FIELDS)
@pytest.mark.parametrize("wrong", [1, None, b"bytes", ["list"], True])
def test_string_field_of_the_wrong_type(field: str, wrong: Any) -> None:
    with pytest.raises(DeltaFormatError, match=f"header field '{field}' must be a string, got"):
        decode(record_of(sample_fields(**{field: wrong}), SAMPLE.body))


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("wrong", ["1", None, 1.0, True, [1]])
def test_integer_field_of_the_wrong_type(field: str, wrong: Any) -> None:
    with pytest.raises(DeltaFormatError, match=f"header field '{field}' must be an integer, got"):
        decode(record_of(sample_fields(**{field: wrong}), SAMPLE.body))


@pytest.mark.parametrize("field", ["seq", "event_time_ms", "body_length"])
def test_negative_integer_field(field: str) -> None:
    with pytest.raises(DeltaFormatError, match=f"header field '{field}' = -1 is outside"):
        decode(record_of(sample_fields(**{field: -1}), SAMPLE.body))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["a"], "header field 'labels' must be a map, got list"),
        ({"a": 1}, "header field 'labels value' must be a string, got int"),
        ({b"a": "1"}, "header field 'labels key' must be a string, got bytes"),
    ],
)
def test_labels_of_the_wrong_type(value: Any, message: str) -> None:
    with pytest.raises(DeltaFormatError, match=message):
        decode(record_of(sample_fields(labels=value), SAMPLE.body))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": "b"}, "header field 'owners' must be an array, got dict"),
        (["ok", 3], "header field 'owners item' must be a string, got int"),
    ],
)
def test_owners_of_the_wrong_type(value: Any, message: str) -> None:
    with pytest.raises(DeltaFormatError, match=message):
        decode(record_of(sample_fields(owners=value), SAMPLE.body))


@pytest.mark.parametrize("op", [0, 6, 99])
def test_unknown_op(op: int) -> None:
    with pytest.raises(DeltaFormatError, match=f"unknown op {op}"):
        decode(record_of(sample_fields(op=op), SAMPLE.body))


def test_unknown_body_encoding() -> None:
    with pytest.raises(DeltaFormatError, match="unknown body encoding 3"):
        decode(record_of(sample_fields(body_encoding=3), SAMPLE.body))


def test_body_over_the_default_maximum_on_decode() -> None:
    big = Delta(op=Op.UPSERT, cluster="c1", key=POD_KEY, body_encoding=BodyEncoding.JSON,
                body=b"x" * (DEFAULT_MAX_BODY + 1))  # fmt: skip
    data = encode(big, max_body=2 * DEFAULT_MAX_BODY)
    with pytest.raises(
        DeltaFormatError, match="body of 4194305 bytes exceeds the maximum of 4194304 bytes"
    ):
        decode(data)
    with pytest.raises(DeltaFormatError, match="exceeds the maximum"):
        decode_header(data)
    assert decode(data, max_body=2 * DEFAULT_MAX_BODY) == big


def test_body_over_a_configured_maximum_on_decode() -> None:
    with pytest.raises(DeltaFormatError, match="body of 14 bytes exceeds the maximum of 10 bytes"):
        decode(SAMPLE_BYTES, max_body=10)


def test_claimed_body_length_over_the_maximum_is_rejected_before_reading_it() -> None:
    data = record_of(sample_fields(body_length=2**40))
    with pytest.raises(DeltaFormatError, match="body of 1099511627776 bytes exceeds the maximum"):
        decode(data)


def test_body_over_the_default_maximum_on_encode() -> None:
    big = Delta(op=Op.UPSERT, cluster="c1", key=POD_KEY, body_encoding=BodyEncoding.JSON,
                body=b"x" * (DEFAULT_MAX_BODY + 1))  # fmt: skip
    with pytest.raises(
        DeltaFormatError, match="body of 4194305 bytes exceeds the maximum of 4194304 bytes"
    ):
        encode(big)


def test_body_over_a_configured_maximum_on_encode() -> None:
    with pytest.raises(DeltaFormatError, match="body of 14 bytes exceeds the maximum of 13 bytes"):
        encode(SAMPLE, max_body=13)


@pytest.mark.parametrize("part", ["group", "kind", "namespace", "name"])
def test_nul_in_a_key_part(part: str) -> None:
    fields = {"group": "", "kind": "Pod", "namespace": "ns", "name": "n"}
    fields[part] = fields[part] + "a\x00b"
    key = ResourceKey(version="v1", **fields)
    delta = Delta(op=Op.DELETE, cluster="c1", key=key)
    with pytest.raises(DeltaFormatError, match=r"key part '.*a\\x00b' contains a NUL character"):
        encode(delta)
    raw = record_of(
        sample_fields(op=int(Op.DELETE), body_encoding=0, body_length=0, **{part: "a\x00b"})
    )
    with pytest.raises(DeltaFormatError, match="contains a NUL character"):
        decode(raw)


@pytest.mark.parametrize("part", ["group", "kind"])
def test_nul_in_a_relisted_kind(part: str) -> None:
    key = ResourceKey(
        **{"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "", "name": ""}
        | {part: "x\x00y"}
    )
    delta = Delta(op=Op.RELIST_START, cluster="c1", key=key, relist=RelistMarker("r1", True))
    with pytest.raises(DeltaFormatError, match="contains a NUL character"):
        encode(delta)


@pytest.mark.parametrize(
    "cluster", ["", "Prod", "prod_eu", "-a", "a-", "a.b", "x" * 64, "ü", "c1\n"]
)
def test_invalid_cluster_names(cluster: str) -> None:
    with pytest.raises(DeltaFormatError, match="must be a DNS label"):
        encode(Delta(op=Op.DELETE, cluster=cluster, key=POD_KEY))
    with pytest.raises(DeltaFormatError, match="must be a DNS label"):
        decode(record_of(sample_fields(cluster=cluster), SAMPLE.body))


def test_lone_surrogates_cannot_be_encoded() -> None:
    with pytest.raises(
        DeltaFormatError, match=r"cannot encode delta header: .*surrogates not allowed"
    ):
        encode(Delta(op=Op.DELETE, cluster="c1", key=ResourceKey("", "v1", "Pod", "ns", "a\ud800")))
    with pytest.raises(
        DeltaFormatError, match=r"cannot encode delta header: .*surrogates not allowed"
    ):
        encode(Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, uid="\udfff"))


def test_encode_refuses_what_decode_would_refuse() -> None:
    with pytest.raises(DeltaFormatError, match="'labels value' must be a string, got int"):
        encode(Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, labels={"a": 1}))  # type: ignore[dict-item]
    with pytest.raises(DeltaFormatError, match="'seq' = -1 is outside"):
        encode(Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, seq=-1))
    with pytest.raises(DeltaFormatError, match="'event_time_ms' = 18446744073709551616 is outside"):
        encode(Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, event_time_ms=2**64))
    with pytest.raises(DeltaFormatError, match="body must be bytes, got str"):
        text_body: Any = "{}"
        encode(
            Delta(
                op=Op.UPSERT,
                cluster="c1",
                key=POD_KEY,
                body_encoding=BodyEncoding.JSON,
                body=text_body,
            )
        )
    with pytest.raises(DeltaFormatError, match="op must be an Op"):
        encode(Delta(op=1, cluster="c1", key=POD_KEY))  # type: ignore[arg-type]
    with pytest.raises(DeltaFormatError, match="'digest partition' = -1 is outside"):
        encode(Delta(op=Op.DIGEST, cluster="c1", key=POD_KEY, digest=DigestMarker(-1, 0, 0)))


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        (Delta(op=Op.UPSERT, cluster="c1", key=POD_KEY), "UPSERT needs a body"),
        (Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, body_encoding=BodyEncoding.JSON, body=b"{}"),
         "DELETE must not carry a body"),
        (Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, body=b"{}"), "DELETE must not carry a body"),
        (Delta(op=Op.DELETE, cluster="c1", key=ResourceKey("", "v1", "Pod", "ns", "")),
         "DELETE needs version, kind and name"),
        (Delta(op=Op.DELETE, cluster="c1", key=ResourceKey("", "", "Pod", "ns", "n")),
         "DELETE needs version, kind and name"),
        (Delta(op=Op.RELIST_START, cluster="c1", key=KIND_KEY), "relist marker data present on a non-relist record"),
        (Delta(op=Op.RELIST_START, cluster="c1", key=POD_KEY, relist=RelistMarker("r", True)),
         "RELIST_START relists a whole kind: namespace and name must be empty"),
        (Delta(op=Op.RELIST_END, cluster="c1", key=ResourceKey("", "v1", "", "", ""), relist=RelistMarker("r", True)),
         "RELIST_END needs the kind it relists"),
        (Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, relist=RelistMarker("r", True)),
         "relist marker data present on a non-relist record"),
        (Delta(op=Op.DIGEST, cluster="c1", key=POD_KEY), "digest data present on a non-digest record"),
        (Delta(op=Op.DELETE, cluster="c1", key=POD_KEY, digest=DigestMarker(0, 0, 0)),
         "digest data present on a non-digest record"),
        (Delta(op=Op.RELIST_START, cluster="c1", key=KIND_KEY, relist=RelistMarker("r", True),
               digest=DigestMarker(0, 0, 0)), "digest data present on a non-digest record"),
    ],
)  # fmt: skip
def test_semantic_faults_on_encode(delta: Delta, message: str) -> None:
    with pytest.raises(DeltaFormatError, match=message):
        encode(delta)


RELIST = Delta(op=Op.RELIST_START, cluster="c1", key=ResourceKey("apps", "v1", "Deployment", "", ""),
               relist=RelistMarker("r1", True))  # fmt: skip
DIGEST = Delta(op=Op.DIGEST, cluster="c1", key=ResourceKey("", "", "", "", ""),
               digest=DigestMarker(3, 10, 2**64 - 1))  # fmt: skip


@pytest.mark.parametrize(
    ("base", "control", "message"),
    [
        (RELIST, None, r"RELIST_START needs control \[relist_id, full\], got None"),
        (RELIST, ["r1"], r"RELIST_START needs control \[relist_id, full\]"),
        (RELIST, ["r1", 1], "relist 'full' flag must be a boolean"),
        (RELIST, [1, True], "header field 'relist_id' must be a string"),
        (DIGEST, [1, 2], r"DIGEST needs control \[partition, count, hash\]"),
        (DIGEST, [2**31, 0, 0], "header field 'digest partition' = 2147483648 is outside"),
        (DIGEST, [0, -1, 0], "header field 'digest count' = -1 is outside"),
        (DIGEST, [0, 0, "h"], "header field 'digest hash' must be an integer, got str"),
        (SAMPLE, [1, 2, 3], "UPSERT must not carry control data"),
    ],
)
def test_control_data_faults_on_decode(base: Delta, control: Any, message: str) -> None:
    fields = fields_of(encode(base))
    fields[HEADER_FIELDS.index("control")] = control
    with pytest.raises(DeltaFormatError, match=message):
        decode(record_of(fields, base.body))


def test_body_on_a_delete_is_rejected_on_decode() -> None:
    fields = sample_fields(op=int(Op.DELETE))
    with pytest.raises(DeltaFormatError, match="DELETE must not carry a body"):
        decode(record_of(fields, SAMPLE.body))


def test_upsert_without_body_is_rejected_on_decode() -> None:
    with pytest.raises(DeltaFormatError, match="UPSERT needs a body"):
        decode(record_of(sample_fields(body_encoding=0, body_length=0)))


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"{", BodyEncoding.JSON, "body is not valid JSON"),
        (b"\xc1", BodyEncoding.MSGPACK, "body is not valid MSGPACK"),
        (b"[1]", BodyEncoding.JSON, "body must be an object, got list"),
        (msgpack.packb(3), BodyEncoding.MSGPACK, "body must be an object, got int"),
        (b"", BodyEncoding.NONE, "record has no body to decode"),
    ],
)
def test_decode_object_faults(body: bytes, encoding: BodyEncoding, message: str) -> None:
    with pytest.raises(DeltaFormatError, match=message):
        decode_object(body, encoding)


def test_encode_object_faults() -> None:
    with pytest.raises(DeltaFormatError, match="carries no object"):
        encode_object({}, BodyEncoding.NONE)
    with pytest.raises(DeltaFormatError, match="cannot encode object as JSON"):
        encode_object({"x": object()}, BodyEncoding.JSON)
    with pytest.raises(DeltaFormatError, match="cannot encode object as MSGPACK"):
        encode_object({"x": object()}, BodyEncoding.MSGPACK)


# -- Kafka keys of records ----------------------------------------------------------------


def test_kafka_keys() -> None:
    assert SAMPLE.kafka_key() == b"\x00Pod\x00default\x00web-0"
    assert RELIST.kafka_key() == b"\xffrelist\x00apps\x00Deployment"
    assert DIGEST.kafka_key() == b"\xffdigest\x003"
    assert not SAMPLE.is_control
    assert RELIST.is_control and DIGEST.is_control


def test_api_version_is_not_part_of_the_key() -> None:
    v1 = Delta(
        op=Op.DELETE, cluster="c1", key=ResourceKey("example.com", "v1", "Widget", "ns", "w")
    )
    v2 = Delta(
        op=Op.DELETE, cluster="c1", key=ResourceKey("example.com", "v2", "Widget", "ns", "w")
    )
    assert v1.kafka_key() == v2.kafka_key()
    assert decode(encode(v2)).key.api_version == "example.com/v2"

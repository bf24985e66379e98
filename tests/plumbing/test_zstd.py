"""plumbing.zstd: aiokafka's record batches use the reused-context codec, byte for byte
what aiokafka's own codec writes, and read every frame aiokafka's codec reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cramjam
import pytest
import zstandard
from aiokafka.codec import zstd_decode as aiokafka_zstd_decode
from aiokafka.record import default_records as py_records
from aiokafka.record._crecords import default_records as c_records

from deltas.errors import ConfigError
from plumbing import zstd

PAYLOAD = b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-%d"}}' * 40


@pytest.fixture
def reused() -> Iterator[None]:
    saved = {m: (m.zstd_encode, m.zstd_decode) for m in (py_records, c_records)}
    zstd.reuse_zstd_contexts()
    yield
    for module, (encode, decode) in saved.items():
        module.zstd_encode, module.zstd_decode = encode, decode


def build_batch(builder_type: Any, values: list[bytes]) -> bytes:
    builder = builder_type(
        magic=2,
        compression_type=py_records.DefaultRecordBatch.CODEC_ZSTD,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=1_700_000_000_000, key=b"k", value=value, headers=[])
    return bytes(builder.build())


def read_batch(batch_type: Any, data: bytes) -> list[bytes]:
    return [record.value for record in batch_type(data)]


def test_the_codec_writes_what_aiokafka_writes() -> None:
    assert zstd.zstd_encode(PAYLOAD) == bytes(cramjam.zstd.compress(PAYLOAD, level=3))
    assert zstd.zstd_encode(PAYLOAD, 1) == bytes(cramjam.zstd.compress(PAYLOAD, level=1))
    assert zstd.zstd_decode(zstd.zstd_encode(PAYLOAD)) == PAYLOAD
    assert zstd.zstd_decode(bytes(cramjam.zstd.compress(PAYLOAD, level=3))) == PAYLOAD
    assert aiokafka_zstd_decode(zstd.zstd_encode(PAYLOAD)) == PAYLOAD


def test_aiokafka_batches_go_through_the_reused_contexts(
    reused: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (py_records, c_records):
        assert module.zstd_encode is zstd.zstd_encode
        assert module.zstd_decode is zstd.zstd_decode
    calls: list[str] = []

    def counted_encode(payload: bytes) -> bytes:
        calls.append("enc")
        return zstd.zstd_encode(payload)

    def counted_decode(payload: bytes) -> bytes:
        calls.append("dec")
        return zstd.zstd_decode(payload)

    monkeypatch.setattr(c_records, "zstd_encode", counted_encode)
    monkeypatch.setattr(c_records, "zstd_decode", counted_decode)
    values = [b"%d" % i + PAYLOAD for i in range(5)]
    data = build_batch(c_records.DefaultRecordBatchBuilder, values)
    assert read_batch(c_records.DefaultRecordBatch, data) == values
    assert calls == ["enc", "dec"]  # the C extension looks the globals up on each call


def test_batches_round_trip_between_the_c_and_python_record_code(reused: None) -> None:
    values = [b"%d" % i + PAYLOAD for i in range(7)]
    from_c = build_batch(c_records.DefaultRecordBatchBuilder, values)
    from_py = build_batch(py_records._DefaultRecordBatchBuilderPy, values)
    assert from_c == from_py
    assert read_batch(py_records._DefaultRecordBatchPy, from_c) == values
    assert read_batch(c_records.DefaultRecordBatch, from_py) == values


def test_frames_without_their_size_fall_back_to_aiokafkas_decoder(reused: None) -> None:
    streamed = zstandard.ZstdCompressor(level=3, write_content_size=False).compress(PAYLOAD)
    with pytest.raises(zstandard.ZstdError):
        zstandard.ZstdDecompressor().decompress(streamed)
    assert zstd.zstd_decode(streamed) == PAYLOAD


def test_frames_declaring_too_much_go_to_aiokafkas_decoder(
    reused: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = zstd.zstd_encode(PAYLOAD)
    seen: list[int] = []

    def fallback(payload: bytes) -> bytes:
        seen.append(len(payload))
        return bytes(aiokafka_zstd_decode(payload))

    monkeypatch.setattr(zstd, "_fallback_decode", fallback)
    assert zstd.zstd_decode(frame) == PAYLOAD and seen == []
    monkeypatch.setattr(zstd, "MAX_DECLARED_BYTES", len(PAYLOAD) - 1)
    assert zstd.zstd_decode(frame) == PAYLOAD and seen == [len(frame)]


def test_installing_twice_keeps_aiokafkas_decoder_as_the_fallback(reused: None) -> None:
    zstd.reuse_zstd_contexts()
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(PAYLOAD)
    assert c_records.zstd_decode(streamed) == PAYLOAD


def test_garbage_is_an_error_not_a_crash(reused: None) -> None:
    with pytest.raises(Exception):  # noqa: B017 - zstandard's or cramjam's error, as aiokafka raises
        zstd.zstd_decode(b"\x28\xb5\x2f\xfd" + b"\x00" * 16)


def test_batches_are_compressed_at_the_installed_level(reused: None) -> None:
    # Repetitive enough that levels 1 and 3 write different frames.
    values = [b"%d" % i + PAYLOAD + bytes(range(i, 200)) * 3 for i in range(20)]
    zstd.reuse_zstd_contexts(1)
    level_1 = build_batch(c_records.DefaultRecordBatchBuilder, values)
    zstd.reuse_zstd_contexts()
    level_3 = build_batch(c_records.DefaultRecordBatchBuilder, values)
    assert level_1 != level_3
    for data in (level_1, level_3):
        assert read_batch(c_records.DefaultRecordBatch, data) == values
    # Each is what aiokafka's own codec writes at that level (same records, same header).
    saved = c_records.zstd_encode
    for level, data in ((1, level_1), (3, level_3)):
        c_records.zstd_encode = lambda payload, lv=level: bytes(
            cramjam.zstd.compress(payload, level=lv)
        )
        try:
            assert build_batch(c_records.DefaultRecordBatchBuilder, values) == data
        finally:
            c_records.zstd_encode = saved


def test_a_level_zstd_does_not_have_is_a_config_error(reused: None) -> None:
    with pytest.raises(ConfigError, match="zstd level"):
        zstd.reuse_zstd_contexts(23)
    assert c_records.zstd_encode is zstd.zstd_encode  # nothing installed

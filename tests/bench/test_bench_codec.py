"""`kubedelta bench codec` end to end on a tiny input, plus its Pod generator."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
from click.testing import CliRunner

from bench.codec import make_pod, pod_delta
from deltas import BodyEncoding, decode, decode_object
from deltas import encode as encode_delta
from kubedelta.cli import main


def test_pods_are_realistic_and_about_two_kilobytes() -> None:
    rng = random.Random(7)
    pods = [make_pod(rng, i) for i in range(50)]
    sizes = [len(orjson.dumps(p)) for p in pods]
    assert min(sizes) >= 1800 and max(sizes) <= 2800
    assert len({p["metadata"]["uid"] for p in pods}) == 50, "uids must be random"
    pod = pods[0]
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert {c["type"] for c in pod["status"]["conditions"]} >= {"Ready", "PodScheduled"}


def test_pod_generation_is_reproducible() -> None:
    assert make_pod(random.Random(3), 1) == make_pod(random.Random(3), 1)


def test_pod_deltas_carry_index_fields_and_round_trip() -> None:
    pod = make_pod(random.Random(1), 0)
    for encoding in (BodyEncoding.JSON, BodyEncoding.MSGPACK):
        delta = pod_delta(pod, encoding, seq=3)
        assert delta.labels["app"] == pod["metadata"]["labels"]["app"]
        assert delta.owners == (pod["metadata"]["ownerReferences"][0]["uid"],)
        decoded = decode(encode_delta(delta))
        assert decode_object(decoded.body, encoding) == pod


def test_bench_codec_command_writes_a_report(tmp_path: Path) -> None:
    out = tmp_path / "codec.json"
    result = CliRunner().invoke(
        main, ["bench", "codec", "--records", "60", "--batch-size", "25", "--repeats", "1",
               "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "header_decode_per_s" in result.output
    report = json.loads(out.read_text())
    assert report["scenario"] == "codec"
    assert report["params"]["records"] == 60
    metrics = report["metrics"]
    for name in (
        "encode_per_s",
        "header_decode_per_s",
        "full_decode_json_per_s",
        "full_decode_msgpack_per_s",
        "header_to_full_ratio",
        "record_bytes_json",
        "record_bytes_msgpack",
        "batch_bytes_per_record_zstd_json",
        "batch_bytes_per_record_zstd_msgpack",
        "batch_bytes_per_record_lz4_json",
        "batch_bytes_per_record_lz4_msgpack",
    ):
        assert metrics[name] > 0, name
    assert metrics["batch_bytes_per_record_zstd_json"] < metrics["record_bytes_json"]
    assert set(report["machine"]) == {
        "cpu_count",
        "cpu_model",
        "memory_bytes",
        "python",
        "platform",
    }

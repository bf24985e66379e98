"""`kubedelta bench store-apply` at a tiny size: it runs end to end and its numbers add up."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from bench.store_apply import PodStream, StoreApplyConfig, run
from kubedelta.cli import main


def test_every_pod_is_created_then_updated_then_replayed(tmp_path: Path) -> None:
    report = run(
        StoreApplyConfig(records=300, batch_size=64, clusters=2, partitions=3, path=tmp_path / "s")
    )
    m = report.metrics
    assert m["objects"] == 300
    for name in ("create_records_per_s", "update_records_per_s", "replay_skip_records_per_s"):
        assert m[name] > 0
    assert m["disk_bytes_per_object_compacted"] > 0
    assert m["get_us_compacted"] > 0


def test_batches_are_grouped_by_partition_with_ascending_offsets() -> None:
    stream = PodStream(StoreApplyConfig(records=100, batch_size=40, clusters=2, partitions=3))
    for batch in stream.batches(update=False):
        keys = [(r.topic, r.partition, r.offset) for r in batch]
        assert keys == sorted(keys)
    assert sum(stream.offsets.values()) == 100


def test_cli_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "store-apply",
            "--records",
            "100",
            "--batch-size",
            "50",
            "--history-retention-s",
            "0",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and "create_records_per_s" in result.output

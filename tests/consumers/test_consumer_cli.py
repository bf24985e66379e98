"""`kubedelta consume` and `kubedelta replay` as an operator runs them."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from consumer_support import (
    LogBuilder,
    create_topics,
    end_offsets,
    produce,
    store_options,
    unique_prefix,
)

from deltas import topic_for
from kubedelta.cli import main
from kubedelta.cmd_consume import settings_from
from store import View
from store import layout as L

CLI = [sys.executable, "-c", "from kubedelta.cli import main; main()"]


def test_replay_rejects_a_bad_time_with_exit_code_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["replay", "--data-dir", str(tmp_path / "v"), "--until", "yesterday"]
    )
    assert result.exit_code == 2
    assert "is not a time" in result.output
    assert "Traceback" not in result.output


def test_replay_refuses_a_non_empty_folder_with_exit_code_2(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(
        main, ["replay", "--data-dir", str(tmp_path), "--bootstrap", "127.0.0.1:1"]
    )
    assert result.exit_code == 2
    assert "--force" in result.output
    assert (tmp_path / "keep.txt").exists()


def test_the_fast_record_path_is_on_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fast(**cli: object) -> bool:
        return settings_from(data_dir=tmp_path, **cli).consumer_config().fast_records

    assert fast() is True
    assert fast(fast_records=False) is False
    monkeypatch.setenv("KUBEDELTA_FAST_RECORDS", "false")
    assert fast() is False and fast(fast_records=True) is True
    monkeypatch.setenv("KUBEDELTA_FAST_RECORDS", "maybe")
    result = CliRunner().invoke(main, ["consume", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_shard_mode_without_group_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["consume", "--data-dir", str(tmp_path), "--mode", "shard"])
    assert result.exit_code == 2
    assert "group" in result.output


def test_consume_and_replay_tune_the_garbage_collector(tmp_path: Path) -> None:
    # A pass allocates several objects per record; with Python's default thresholds the
    # cyclic GC ran every few records in `kubedelta consume` (the benchmarks tuned it,
    # the commands did not). Each command below fails right after tuning, before Kafka.
    saved = gc.get_threshold()
    try:
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "keep.txt").write_text("mine")
        for args in (
            ["replay", "--data-dir", str(tmp_path / "busy"), "--bootstrap", "127.0.0.1:1"],
            ["consume", "--data-dir", str(tmp_path / "locked"), "--bootstrap", "127.0.0.1:1"],
        ):
            gc.set_threshold(700, 10, 10)
            with View.open(tmp_path / "locked", store_options("x")):  # holds the store lock
                result = CliRunner().invoke(main, args)
            assert result.exit_code != 0, result.output
            assert "Traceback" not in result.output
            assert gc.get_threshold() == (50_000, 20, 100), args[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.kafka
async def test_consume_serves_metrics_gets_ready_and_stops_cleanly_on_sigterm(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    topics = [topic_for(c, prefix) for c in ("alpha", "beta")]
    await create_topics(kafka_bootstrap, topics, partitions=2)
    log = LogBuilder(prefix, 2)
    await produce(
        kafka_bootstrap, [log.upsert(c, i) for c in ("alpha", "beta") for i in range(3_000)]
    )
    ends = await end_offsets(kafka_bootstrap, topics)
    data_dir = tmp_path / "view"
    env = {**os.environ, "KUBEDELTA_DEAD_LETTER_TOPIC": f"{prefix}-dlq"}
    process = await asyncio.create_subprocess_exec(
        *CLI, "consume", "--data-dir", str(data_dir), "--bootstrap", kafka_bootstrap,
        "--topic-prefix", prefix, "--metrics-port", "0",
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        url = ""
        deadline = time.monotonic() + 30
        while not url and time.monotonic() < deadline:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
            found = re.search(r"metrics at (http://\S+)/metrics", line)
            url = found.group(1) if found else ""
        assert url, "the consumer never announced its metrics endpoint"
        status = 0
        while status != 200 and time.monotonic() < deadline:
            status, _ = await asyncio.to_thread(http_get, url + "/readyz")
            await asyncio.sleep(0.1)
        assert status == 200
        _, metrics = await asyncio.to_thread(http_get, url + "/metrics")
        assert 'kubedelta_consumer_deltas_applied_total{cluster="alpha"} 3000.0' in metrics
        assert "kubedelta_consumer_write_seconds_bucket" in metrics
        assert "kubedelta_consumer_lag_records" in metrics
        for cf in L.ALL_CFS:  # compaction debt, per column family
            assert re.search(rf'kubedelta_store_l0_files{{cf="{cf}"}} \d+\.0', metrics), cf
        # fetch sessions: one full request made the session, the rest are incremental
        incremental = 0.0
        while not incremental and time.monotonic() < deadline:
            _, metrics = await asyncio.to_thread(http_get, url + "/metrics")
            found = re.search(r'fetch_requests_total{kind="incremental"} (\S+)', metrics)
            incremental = float(found.group(1)) if found else 0.0
            await asyncio.sleep(0.2)
        assert incremental > 0
        assert 'kubedelta_consumer_fetch_requests_total{kind="full"} 1.0' in metrics
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    with View.open(data_dir, store_options(prefix)) as view:
        assert view.resume_offsets() == ends
        assert view.count() == 6_000


@pytest.mark.kafka
async def test_replay_command_prints_a_summary_per_cluster(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    await create_topics(kafka_bootstrap, [topic_for("alpha", prefix)], partitions=1)
    log = LogBuilder(prefix, 1)
    await produce(kafka_bootstrap, [log.upsert("alpha", i) for i in range(10)])
    result = await asyncio.to_thread(
        CliRunner().invoke,
        main,
        ["replay", "--data-dir", str(tmp_path / "v"), "--bootstrap", kafka_bootstrap,
         "--topic-prefix", prefix],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("cluster"))
    assert lines[header].split() == ["cluster", "objects", "partitions", "digest", "last", "record"]
    assert lines[header + 1].split()[:4] == ["alpha", "10", "1", "none"]
    assert "replayed 10 records" in result.output

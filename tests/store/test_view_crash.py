"""Crash consistency: data and offsets land in one WriteBatch, so a writer killed with
SIGKILL at any moment reopens exactly at its last committed batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_writer import BULK_OPTS, OPTS, batches, offsets_after

from store import View


def committed(progress: Path) -> int:
    """Number of batches the writer reported committed."""
    if not progress.exists():
        return 0
    return len([line for line in progress.read_text().splitlines() if line.strip().isdigit()])


def persisted(progress: Path) -> int:
    """Batches the bulk writer last reported persisted (end_bulk returned)."""
    marks = [line for line in progress.read_text().splitlines() if line.startswith("persisted")]
    return int(marks[-1].split()[1]) if marks else 0


def run_and_kill(tmp_path: Path, seed: int, start_ms: int, at_least: int, *mode: str) -> Path:
    """Start the writer, SIGKILL it somewhere after ``at_least`` committed batches."""
    store, progress = tmp_path / "store", tmp_path / "progress"
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), str(here.parents[1])])}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(here / "crash_writer.py"),
            str(store),
            str(progress),
            str(seed),
            str(start_ms),
            *mode,
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while committed(progress) < at_least and time.monotonic() < deadline:
            assert proc.poll() is None, "the writer died on its own"
            time.sleep(0.005)
        time.sleep(0.013)  # land somewhere inside a later batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    return progress


def test_sigkill_mid_run_reopens_at_the_last_committed_batch(tmp_path: Path) -> None:
    seed, start_ms = 7, int(time.time() * 1000)
    progress = run_and_kill(tmp_path, seed, start_ms, 12)
    reported = committed(progress)
    assert reported >= 12

    with View.open(tmp_path / "store", OPTS) as crashed:
        resumed = crashed.resume_offsets()
        crashed_digest = crashed.view_digest()
    history = offsets_after(seed, start_ms, reported + 1)
    # the kill may fall between a commit and its progress line: one batch more is fine
    matches = [i + 1 for i, offsets in enumerate(history) if offsets == resumed]
    assert matches in ([reported], [reported + 1]), (reported, matches)
    assert_equals_fresh_replay(tmp_path, seed, start_ms, matches[0], resumed, crashed_digest)


@pytest.mark.parametrize("seed", [11, 12])
def test_sigkill_in_bulk_mode_reopens_at_a_whole_batch_prefix(tmp_path: Path, seed: int) -> None:
    # Without the WAL a crash keeps what the last (atomic, all-CF) flush wrote: some
    # earlier batch boundary, at least the last one persisted by end_bulk, never a
    # partial batch or data without its offsets.
    start_ms = int(time.time() * 1000)
    progress = run_and_kill(tmp_path, seed, start_ms, 23, "bulk")
    reported, durable = committed(progress), persisted(progress)
    assert durable >= 20

    with View.open(tmp_path / "store", BULK_OPTS) as crashed:
        resumed = crashed.resume_offsets()
        crashed_digest = crashed.view_digest()
    history = offsets_after(seed, start_ms, reported + 1)
    matches = [i + 1 for i, offsets in enumerate(history) if offsets == resumed]
    assert matches, "the reopened store is not at a batch boundary"
    assert durable <= matches[0] <= reported + 1, (durable, reported, matches)
    assert_equals_fresh_replay(tmp_path, seed, start_ms, matches[0], resumed, crashed_digest)


def assert_equals_fresh_replay(
    tmp_path: Path,
    seed: int,
    start_ms: int,
    applied: int,
    resumed: dict[tuple[str, int], int],
    crashed_digest: str,
) -> None:
    with View.open(tmp_path / "fresh", OPTS) as fresh:
        for i, batch in enumerate(batches(seed, start_ms)):
            if i == applied:
                break
            fresh.apply(batch)
        assert fresh.resume_offsets() == resumed
        assert fresh.view_digest() == crashed_digest

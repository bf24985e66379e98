"""Crash consistency: data and offsets land in one WriteBatch, so a writer killed with
SIGKILL at any moment reopens exactly at its last committed batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from crash_writer import OPTS, batches, offsets_after

from store import View


def committed(progress: Path) -> int:
    """Number of batches the writer reported committed."""
    if not progress.exists():
        return 0
    return len([line for line in progress.read_text().splitlines() if line.strip()])


def test_sigkill_mid_run_reopens_at_the_last_committed_batch(tmp_path: Path) -> None:
    store, progress = tmp_path / "store", tmp_path / "progress"
    seed, start_ms = 7, int(time.time() * 1000)
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
        ],
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while committed(progress) < 12 and time.monotonic() < deadline:
            assert proc.poll() is None, "the writer died on its own"
            time.sleep(0.005)
        time.sleep(0.013)  # land somewhere inside a later batch
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    reported = committed(progress)
    assert reported >= 12

    with View.open(store, OPTS) as crashed:
        resumed = crashed.resume_offsets()
        crashed_digest = crashed.view_digest()
    history = offsets_after(seed, start_ms, reported + 1)
    # the kill may fall between a commit and its progress line: one batch more is fine
    matches = [i + 1 for i, offsets in enumerate(history) if offsets == resumed]
    assert matches in ([reported], [reported + 1]), (reported, matches)
    applied = matches[0]

    with View.open(tmp_path / "fresh", OPTS) as fresh:
        for i, batch in enumerate(batches(seed, start_ms)):
            if i == applied:
                break
            fresh.apply(batch)
        assert fresh.resume_offsets() == resumed
        assert fresh.view_digest() == crashed_digest

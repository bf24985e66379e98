"""`kubedelta serve` as a process: SIGTERM stops it gracefully and it cleans up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from store import StoreOptions, View


def test_sigterm_closes_the_store_and_removes_the_secondary_directory(tmp_path: Path) -> None:
    View.open(tmp_path / "store", StoreOptions()).close()
    tokens = tmp_path / "tokens.json"
    tokens.write_bytes(orjson.dumps({"tokens": {"reader-token-1234": {"clusters": ["*"]}}}))
    temp = tmp_path / "tmp"  # where the secondary directory goes (tempfile honours TMPDIR)
    temp.mkdir()
    command = [sys.executable, "-c", "from kubedelta.cli import main; main()", "serve"]
    args = ["--data-dir", str(tmp_path / "store"), "--tokens", str(tokens), "--port", "0"]
    process = subprocess.Popen(
        command + args,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert re.match(r"query: http://127\.0\.0\.1:\d+", line), line
        deadline = time.monotonic() + 10
        while not list(temp.glob("kubedelta-query-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(temp.glob("kubedelta-query-*"))) == 1  # the secondary, while serving
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert list(temp.iterdir()) == []  # nothing left behind

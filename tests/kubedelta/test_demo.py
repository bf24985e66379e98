"""`kubedelta demo` starts the whole pipeline, serves a query, and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
import psutil
import pytest

CLI = [sys.executable, "-c", "from kubedelta.cli import main; main()"]


def _wait_for(pattern: str, log: Path, process: subprocess.Popen[bytes], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if m := re.search(pattern, log.read_text(errors="replace")):
            return m.group(1)
        assert process.poll() is None, log.read_text(errors="replace")[-4000:]
        time.sleep(0.2)
    raise AssertionError(f"no /{pattern}/ in:\n{log.read_text(errors='replace')[-4000:]}")


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.kafka
def test_demo_serves_a_query_and_stops_cleanly(kafka_bootstrap: str, tmp_path: Path) -> None:
    del kafka_bootstrap  # the demo finds the same broker (and must not stop it: we borrow it)
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [
                *CLI,
                "demo",
                "--clusters",
                "2",
                "--objects",
                "60",
                "--churn",
                "2",
                "--port",
                "0",
                "--work-dir",
                str(tmp_path / "work"),
                "--topic-prefix",
                f"demo{uuid.uuid4().hex[:8]}.cluster",
                "--duration",
                "90",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        url = _wait_for(r"kubedelta demo is running: (http://\S+)", log, demo, 100)
        token = _wait_for(r"admin token:\s+(\S+)", log, demo, 5)
        children = _descendants(demo.pid)
        assert len(children) >= 4  # simulator, producers, consumer, query
        request = urllib.request.Request(
            f"{url}/api/v1/objects?kind=Namespace&count=true",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert orjson.loads(response.read())["count"] > 0
        text = log.read_text()
        assert 'curl -s -H "Authorization: Bearer' in text
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 0, log.read_text()[-4000:]
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
    left = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], [p.cmdline() for p in left]
    # The broker was borrowed by this test session, so the demo left it running.
    assert "stopped (SIGTERM)" in log.read_text()

"""One benchmark run per work folder: a second run is refused with a clear error
instead of emptying the folder under the first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.workdir import WorkDirBusyError, exclusive_work_dir


def test_the_folder_is_emptied_and_held_for_the_run(tmp_path: Path) -> None:
    work = tmp_path / "e2e"
    (work / "store").mkdir(parents=True)
    (work / "store" / "old").write_text("x")
    with exclusive_work_dir(work) as held:
        assert held == work and list(work.iterdir()) == []
        (work / "store").mkdir()
        busy = pytest.raises(WorkDirBusyError, match="in use by another benchmark run")
        with busy as err, exclusive_work_dir(work):
            pass
        assert isinstance(err.value, BenchError)
        assert (work / "store").is_dir()  # the refused run emptied nothing
    with exclusive_work_dir(work):  # released at the end of the run
        pass


def test_a_run_in_another_process_is_refused_and_its_pid_named(tmp_path: Path) -> None:
    work = tmp_path / "e2e"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib\n"
            "from bench.workdir import exclusive_work_dir\n"
            f"with exclusive_work_dir(pathlib.Path({str(work)!r})):\n"
            "    print('held', flush=True)\n"
            "    sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkDirBusyError, match=f"pid {holder.pid}"), exclusive_work_dir(work):
            pass
    finally:
        holder.kill()  # kill -9: the kernel drops the lock with the process
        holder.wait(timeout=10)
    with exclusive_work_dir(work):
        pass

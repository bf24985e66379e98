"""A benchmark's work folder, one run at a time.

``bench e2e`` empties its folder (default ``.kubedelta/bench/e2e``) when it starts.
A second run started with the same folder used to wipe the first run's store under
its consumer, which then died with a RocksDB error. The run now holds an exclusive
``flock`` on ``<folder>.lock`` (beside the folder, which is emptied) for its whole
life: the kernel drops it when the process exits, kill -9 included, so a crashed run
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bench.errors import BenchError


class WorkDirBusyError(BenchError):
    """Another benchmark run holds the work folder."""


@contextlib.contextmanager
def exclusive_work_dir(path: Path) -> Iterator[Path]:
    """Lock ``path`` for this run, empty it, and yield it; WorkDirBusyError if another
    run holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise WorkDirBusyError(
                f"{path} is in use by another benchmark run (pid {holder}); wait for it "
                "or pass --work-dir with another folder"
            ) from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        yield path
    finally:
        os.close(fd)  # releases the lock

"""Components under test run as their own processes (started through the ``kubedelta``
CLI), so each one's memory and CPU can be measured apart. This module starts them,
waits for them to say they are ready, samples their resident memory and stops them
(by pid: SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.errors import BenchError

MIB = 1024 * 1024


class ComponentFailedError(BenchError):
    """A component process exited early or never became ready."""


def kubedelta_command() -> list[str]:
    """How to run the CLI: the console script beside this interpreter, else ``python -c``."""
    script = Path(sys.executable).with_name("kubedelta")
    if script.exists():
        return [str(script)]
    found = shutil.which("kubedelta")
    if found is not None:
        return [found]
    return [sys.executable, "-c", "from kubedelta.cli import main; main()"]


@dataclass
class Usage:
    """Peak resident memory and CPU time of one process (and its children)."""

    peak_rss_bytes: int = 0
    last_rss_bytes: int = 0
    cpu_s: float = 0.0  #: user + system seconds, the latest sample
    cpu_offset_s: float = 0.0  #: CPU seconds spent before we started watching (subtracted)

    def sample(
        self, process: psutil.Process, children: Mapping[int, Sequence[int]] | None = None
    ) -> None:
        """``children`` (pid -> child pids of every process, from :func:`children_map`)
        saves each sample its own walk over every process of the machine."""
        rss = 0
        cpu = 0.0
        with contextlib.suppress(psutil.Error):
            if children is None:
                procs = [process, *process.children(recursive=True)]
            else:
                procs = [
                    process,
                    *(psutil.Process(pid) for pid in descendants(process.pid, children)),
                ]
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    rss += p.memory_info().rss
                    times = p.cpu_times()
                    cpu += times.user + times.system
        if rss:
            self.last_rss_bytes = rss
            self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if cpu:
            self.cpu_s = max(self.cpu_s, cpu - self.cpu_offset_s)


@dataclass
class Component:
    """One started process: its role ("simulator", "producer-2", ...), log file and usage."""

    role: str
    process: subprocess.Popen[bytes]
    log_path: Path
    usage: Usage = field(default_factory=Usage)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def sample(self, children: Mapping[int, Sequence[int]] | None = None) -> None:
        with contextlib.suppress(psutil.Error):
            self.usage.sample(psutil.Process(self.pid), children)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def find_line(self, pattern: str) -> re.Match[str] | None:
        """The first log line matching ``pattern``, if any yet."""
        regex = re.compile(pattern)
        with contextlib.suppress(OSError):
            for line in self.log_path.read_text(errors="replace").splitlines():
                match = regex.search(line)
                if match is not None:
                    return match
        return None

    async def wait_for_line(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """Wait until the log has a line matching ``pattern``; raise if the process dies."""
        deadline = time.monotonic() + timeout_s
        while True:
            match = self.find_line(pattern)
            if match is not None:
                return match
            if not self.alive():
                raise ComponentFailedError(
                    f"{self.role} exited with {self.process.returncode} before printing "
                    f"/{pattern}/; log tail:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                raise ComponentFailedError(
                    f"{self.role} did not print /{pattern}/ within {timeout_s:.0f} s; "
                    f"log tail:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)

    def stop(self, grace_s: float = 20.0) -> int | None:
        """SIGTERM, wait ``grace_s``, then SIGKILL. Returns the exit code."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(10)
        return self.process.returncode


class Components:
    """The processes of one benchmark run: started in order, stopped in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Component] = []
        self.external: dict[str, Usage] = {}  #: processes we sample but did not start
        self._external_pids: dict[str, int] = {}

    def start(self, role: str, args: Sequence[str], env: dict[str, str] | None = None) -> Component:
        """Run ``kubedelta <args>`` with stdout+stderr into ``<log_dir>/<role>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{role}.log"
        command = [*kubedelta_command(), *args]
        with open(log_path, "wb") as log:
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                start_new_session=True,  # a Ctrl-C of the bench does not hit them first
            )
        component = Component(role, process, log_path)
        self.started.append(component)
        return component

    def watch_external(self, role: str, pid: int) -> None:
        """Sample a process we did not start; its CPU counts from now on."""
        usage = Usage()
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            usage.cpu_offset_s = times.user + times.system
        self.external[role] = usage
        self._external_pids[role] = pid

    def sample(self) -> None:
        """RSS and CPU of every process (with its children), from one walk over the
        machine's processes rather than one per component."""
        children = children_map()
        for component in self.started:
            if component.alive():
                component.sample(children)
        for role, pid in self._external_pids.items():
            with contextlib.suppress(psutil.Error):
                self.external[role].sample(psutil.Process(pid), children)

    def check_alive(self) -> None:
        for component in self.started:
            if not component.alive():
                raise ComponentFailedError(
                    f"{component.role} exited with {component.process.returncode}; "
                    f"log tail:\n{component.log_tail()}"
                )

    def usages(self) -> Iterator[tuple[str, Usage]]:
        for component in self.started:
            yield component.role, component.usage
        yield from self.external.items()

    def stop_all(self) -> None:
        for component in reversed(self.started):
            component.stop()


def children_map() -> dict[int, list[int]]:
    """pid -> pids of its direct children, for every process of the machine."""
    out: dict[int, list[int]] = {}
    for proc in psutil.process_iter(["ppid"]):
        ppid = proc.info.get("ppid")
        if ppid is not None:
            out.setdefault(ppid, []).append(proc.pid)
    return out


def descendants(pid: int, children: Mapping[int, Sequence[int]]) -> list[int]:
    """Every process below ``pid`` in ``children`` (children, their children, ...)."""
    found: list[int] = []
    stack = list(children.get(pid, ()))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, ()))
    return found


def thread_cpu_by_name(pid: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) of a process's live threads, summed by thread name
    (``/proc/PID/task/*/comm``; RocksDB names its pools ``rocksdb:low`` for compactions
    and ``rocksdb:high`` for flushes). Threads that already exited are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    task_dir = Path(f"/proc/{pid or os.getpid()}/task")
    for task in task_dir.iterdir():
        with contextlib.suppress(OSError):
            name = (task / "comm").read_text().strip()
            # comm may hold spaces and parentheses: the fields follow its closing one
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(stat[11]) + int(stat[12])) / tick
    return out


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (allocated size would overstate sparse index files)."""
    total = 0
    if not path.exists():
        return 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(root, name)).st_size
    return total


def interrupt_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a terminated benchmark still runs its
    ``finally`` blocks and stops the components it started (they run in their own
    sessions and would not get the signal)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)

"""What every benchmark scenario produces: one :class:`Report`, written as JSON and
printed as a table, plus a tiny progress bar. No dependencies beyond click/psutil.

JSON layout (one file per run)::

    {"scenario": "codec", "params": {...}, "metrics": {...}, "machine": {...}}

Metric names carry their unit (``_per_s``, ``_bytes``, ``_ms``, ``_ratio``), so
the table and the JSON need no separate unit column.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

import click
import psutil

ParamValue = str | int | float | bool | None
MetricValue = int | float

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class Machine:
    """Where the numbers were measured; without it they mean little."""

    cpu_count: int  #: logical CPUs this process may run on (affinity), not the host's total
    cpu_model: str  #: /proc/cpuinfo "model name", or platform.processor()
    memory_bytes: int  #: total physical memory, bytes
    python: str  #: implementation and version, e.g. "CPython 3.11.7"
    platform: str  #: platform.platform(): OS, kernel, architecture

    @classmethod
    def current(cls) -> Machine:
        return cls(
            cpu_count=_cpu_count(),
            cpu_model=_cpu_model(),
            memory_bytes=int(psutil.virtual_memory().total),
            python=f"{platform.python_implementation()} {platform.python_version()}",
            platform=platform.platform(),
        )

    def describe(self) -> str:
        """One line for docs and terminal output."""
        gib = self.memory_bytes / 2**30
        return (
            f"{self.cpu_count} CPUs ({self.cpu_model}), {gib:.1f} GiB RAM, "
            f"{self.python}, {self.platform}"
        )


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@dataclass(frozen=True, slots=True)
class Report:
    """The result of one scenario run."""

    scenario: str  #: the `kubedelta bench <scenario>` command name
    params: Mapping[str, ParamValue]  #: the knobs the run used (sizes, counts, seeds)
    metrics: Mapping[str, MetricValue]  #: measured values; the unit is in the name
    machine: Machine  #: where it ran

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "machine": asdict(self.machine),
        }

    def write_json(self, path: Path) -> None:
        """Write atomically (temp file + rename), creating parent directories."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)

    def summary(self) -> str:
        """A plain-text table: parameters on the first line, one metric per row."""
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        width = max((len(name) for name in self.metrics), default=6)
        lines = [f"{self.scenario} ({params})", f"{'metric':<{width}}  {'value':>14}"]
        lines += [f"{name:<{width}}  {format_value(v):>14}" for name, v in self.metrics.items()]
        lines.append(f"machine: {self.machine.describe()}")
        return "\n".join(lines)


def format_value(value: MetricValue) -> str:
    """Thousands separators for big numbers, 3 significant digits for small ones."""
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def emit(report: Report, json_path: Path | None) -> None:
    """Print the table; write the JSON if asked. Every scenario command ends with this."""
    click.echo(report.summary())
    if json_path is not None:
        report.write_json(json_path)
        click.echo(f"wrote {json_path}")


def json_option(command: F) -> F:
    """The ``--json PATH`` option every scenario command takes."""
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the report as JSON to PATH.",
    )(command)


class Progress:
    """A one-line progress bar on a terminal; silent when the stream is not a TTY
    (logs and CI output stay clean). Redraws at most 10 times a second."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = self._stream.isatty()
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        now = time.monotonic()
        if self._enabled and (now - self._last_draw >= 0.1 or self.done == self.total):
            self._last_draw = now
            self._stream.write("\r" + self.render())
            self._stream.flush()

    def render(self, width: int = 30) -> str:
        filled = width * self.done // self.total
        percent = 100 * self.done // self.total
        return f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {percent:3d}%"

    def close(self) -> None:
        if self._enabled:
            self._stream.write("\r" + " " * (len(self.render()) + 2) + "\r")
            self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The shared benchmark report: JSON layout, table, machine facts, progress bar."""

from __future__ import annotations

import io
import json
from pathlib import Path

from bench.report import Machine, Progress, Report, format_value

MACHINE = Machine(
    cpu_count=2, cpu_model="Test CPU", memory_bytes=8 * 2**30, python="CPython 3.11.7",
    platform="Linux-x86_64",
)  # fmt: skip
REPORT = Report(
    "demo", {"records": 10, "seed": 1}, {"rate_per_s": 12345.6, "size_bytes": 7}, MACHINE
)


def test_json_layout(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "demo.json"
    REPORT.write_json(path)
    data = json.loads(path.read_text())
    assert data == {
        "scenario": "demo",
        "params": {"records": 10, "seed": 1},
        "metrics": {"rate_per_s": 12345.6, "size_bytes": 7},
        "machine": {
            "cpu_count": 2,
            "cpu_model": "Test CPU",
            "memory_bytes": 8 * 2**30,
            "python": "CPython 3.11.7",
            "platform": "Linux-x86_64",
        },
    }
    assert not list(path.parent.glob("*.tmp"))


def test_summary_table() -> None:
    lines = REPORT.summary().splitlines()
    assert lines[0] == "demo (records=10, seed=1)"
    assert lines[2].split() == ["rate_per_s", "12,346"]
    assert lines[3].split() == ["size_bytes", "7"]
    assert lines[-1] == "machine: 2 CPUs (Test CPU), 8.0 GiB RAM, CPython 3.11.7, Linux-x86_64"


def test_value_formatting() -> None:
    assert format_value(1234567) == "1,234,567"
    assert format_value(1234.5) == "1,234"
    assert format_value(1.23456) == "1.23"
    assert format_value(0.000123) == "0.000123"


def test_current_machine_is_plausible() -> None:
    m = Machine.current()
    assert m.cpu_count >= 1
    assert m.memory_bytes > 2**20
    assert m.cpu_model
    assert m.python.split()[0] in {"CPython", "PyPy"}


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_and_clears_the_line() -> None:
    stream = FakeTty()
    with Progress(4, "work", stream=stream) as bar:
        bar.advance(4)
        assert bar.render(width=4) == "work [####] 100%"
    out = stream.getvalue()
    assert "\rwork [" in out and "100%" in out
    assert out.endswith("\r")


def test_progress_is_silent_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress(2, "work", stream=stream) as bar:
        bar.advance()
        bar.advance(5)  # clamps at the total
        assert bar.done == 2
    assert stream.getvalue() == ""

"""`kubedelta bench <scenario>`: every benchmark scenario, one sub-command each.

A scenario lives in ``bench/<scenario>.py`` and exposes a click ``command``
taking ``--json PATH`` (``bench.report.json_option``); register it below with
one import and one ``bench.add_command`` line.
"""

from __future__ import annotations

import click

from bench import codec as bench_codec


@click.group()
def bench() -> None:
    """Measure kubedelta: each scenario prints a table and can write JSON (--json PATH)."""


bench.add_command(bench_codec.command)

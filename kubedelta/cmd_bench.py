"""`kubedelta bench <scenario>`: every benchmark scenario, one sub-command each.

A scenario lives in ``bench/<scenario>.py`` and exposes a click ``command``
taking ``--json PATH`` (``bench.report.json_option``); register it below with
one import and one ``bench.add_command`` line.
"""

from __future__ import annotations

import click

from bench import baselines as bench_baselines
from bench import codec as bench_codec
from bench import consume as bench_consume
from bench import e2e as bench_e2e
from bench import poller as bench_poller
from bench import producer as bench_producer
from bench import query as bench_query
from bench import store_apply as bench_store_apply


@click.group()
def bench() -> None:
    """Measure kubedelta: each scenario prints a table and can write JSON (--json PATH)."""


bench.add_command(bench_codec.command)
bench.add_command(bench_producer.command)
bench.add_command(bench_store_apply.command)
bench.add_command(bench_e2e.command)
bench.add_command(bench_poller.command)
bench.add_command(bench_query.command)
bench.add_command(bench_baselines.command)
bench.add_command(bench_baselines.worker_command)
bench.add_command(bench_consume.command)

"""The `kubedelta` console script: one click group, one sub-module per area.

Each area's commands live in their own module (``kubedelta/cmd_*.py``) so they
can grow independently; this file only stitches them together.
"""

from __future__ import annotations

import click

from kubedelta import (
    cmd_bench,
    cmd_cluster,
    cmd_consume,
    cmd_demo,
    cmd_kafka,
    cmd_produce,
    cmd_serve,
    cmd_simulate,
)


@click.group()
@click.version_option(package_name="kubedelta")
def main() -> None:
    """kubedelta: an event-sourced, multi-cluster Kubernetes resource cache."""


main.add_command(cmd_kafka.kafka)
main.add_command(cmd_cluster.cluster)
main.add_command(cmd_cluster.consumer_identity)
main.add_command(cmd_bench.bench)
main.add_command(cmd_simulate.simulate)
main.add_command(cmd_produce.produce)
main.add_command(cmd_serve.serve)
main.add_command(cmd_demo.demo)
main.add_command(cmd_consume.consume)
main.add_command(cmd_consume.replay)

"""`kubedelta kafka ...`: the local single-node Kafka broker (real Apache Kafka, KRaft).

Settings come from the environment: ``KUBEDELTA_HOME`` (default
``<checkout>/.kubedelta``), ``KUBEDELTA_KAFKA_PORT`` (default 9092) and
``KUBEDELTA_KAFKA_CONTROLLER_PORT`` (default port + 1).
"""

from __future__ import annotations

import os
import time

import click

from plumbing import broker


def _config() -> broker.LocalBrokerConfig:
    try:
        return broker.LocalBrokerConfig.from_env(os.environ)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def kafka() -> None:
    """Run the local Kafka broker (jars from Maven Central, data under .kubedelta/kafka)."""


@kafka.command()
def fetch() -> None:
    """Download the broker jars with Maven (skipped when cached)."""
    config = _config()
    try:
        fetched = broker.fetch_jars(config)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{'fetched' if fetched else 'cached'}: {config.libs}")


@kafka.command()
def start() -> None:
    """Start the broker in the background (no-op when running); print its bootstrap address."""
    config = _config()
    began = time.monotonic()
    try:
        bootstrap = broker.start(config, pin=True)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    # Human note on stderr; stdout is just the address, for `$(kubedelta kafka start)`.
    click.echo(f"kafka running (ready after {time.monotonic() - began:.1f} s)", err=True)
    click.echo(bootstrap)


@kafka.command()
def stop() -> None:
    """Stop the broker (SIGTERM, then SIGKILL after a timeout); no-op when stopped."""
    config = _config()
    try:
        stopped = broker.stop(config)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("kafka stopped" if stopped else "kafka was not running")


@kafka.command()
def status() -> None:
    """Print running/stopped, bootstrap address, pid and home; exit 1 when not running."""
    state = broker.status(_config())
    click.echo(f"kafka: {'running' if state.running else state.note or 'stopped'}")
    click.echo(f"bootstrap: {state.bootstrap}")
    click.echo(f"pid: {state.pid if state.pid is not None else '-'}")
    click.echo(f"home: {state.home}")
    if not state.running:
        raise SystemExit(1)


@kafka.command()
@click.confirmation_option(prompt="Delete every topic and offset of the local broker?")
def reset() -> None:
    """Stop the broker and delete its data (jars stay cached)."""
    config = _config()
    broker.reset(config)
    click.echo(f"kafka data deleted: {config.data}")

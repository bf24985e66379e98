"""`kubedelta kafka ...`: the local Kafka broker (real Apache Kafka, KRaft): one node,
or ``--brokers N`` nodes; plaintext, or ``--secure`` (SASL_SSL + SCRAM + ACLs, ``--mtls``).

Settings come from the environment: ``KUBEDELTA_HOME`` (default
``<checkout>/.kubedelta``), ``KUBEDELTA_KAFKA_PORT`` (default 9092) and
``KUBEDELTA_KAFKA_CONTROLLER_PORT`` (default port + number of nodes). A home
remembers how it was formatted, so ``status``, ``stop`` and ``reset`` need no
flags, and ``start`` without flags starts it the same way again.
"""

from __future__ import annotations

import os
import time

import click

from plumbing import broker


def _config() -> broker.LocalBrokerConfig:
    """The home's broker as it was formatted (all nodes, its security)."""
    try:
        return broker.recorded_layout(broker.LocalBrokerConfig.from_env(os.environ))
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


def _start_config(
    brokers: int | None, secure: bool | None, mtls: bool | None
) -> broker.LocalBrokerConfig:
    """Flags win; a flag not given keeps what the home was formatted with."""
    try:
        recorded = broker.recorded_layout(broker.LocalBrokerConfig.from_env(os.environ))
        want_mtls = recorded.mtls if mtls is None else mtls
        return broker.LocalBrokerConfig.from_env(
            os.environ,
            brokers=recorded.brokers if brokers is None else brokers,
            secure=(recorded.secure if secure is None else secure) or want_mtls,
            mtls=want_mtls,
        )
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
@click.option(
    "--brokers",
    type=click.IntRange(1, 9),
    default=None,
    help="Nodes (combined broker+controller, all quorum voters) on consecutive ports; "
    "3 gives replication 3 with min.insync.replicas=2.",
)
@click.option(
    "--secure/--plaintext",
    default=None,
    help="SASL_SSL with SCRAM-SHA-512, ACLs enforced (StandardAuthorizer), a local CA.",
)
@click.option(
    "--mtls/--no-mtls",
    default=None,
    help="With --secure: clients must also present a certificate from the local CA.",
)
def start(brokers: int | None, secure: bool | None, mtls: bool | None) -> None:
    """Start the broker in the background (no-op when running); print its bootstrap address.

    On a cluster with a killed node, starts just that node again."""
    config = _start_config(brokers, secure, mtls)
    began = time.monotonic()
    try:
        bootstrap = broker.start(config, pin=True)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc
    # Human note on stderr; stdout is just the address, for `$(kubedelta kafka start)`.
    click.echo(f"kafka running (ready after {time.monotonic() - began:.1f} s)", err=True)
    if config.secure:
        click.echo(
            f"SASL_SSL/SCRAM-SHA-512; admin user kubedelta-admin, password in "
            f"{config.admin_password_file}, CA {config.tls.ca_cert}"
            + ("; client certificates required (mTLS)" if config.mtls else ""),
            err=True,
        )
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
    if len(state.pids) > 1:
        click.echo("nodes: " + " ".join(f"{i}={p or '-'}" for i, p in enumerate(state.pids, 1)))
    click.echo(f"home: {state.home}")
    config = _config()
    if config.secure:
        click.echo("security: SASL_SSL SCRAM-SHA-512, ACLs" + (", mTLS" if config.mtls else ""))
    if not state.running:
        raise SystemExit(1)


@kafka.command()
@click.confirmation_option(prompt="Delete every topic and offset of the local broker?")
def reset() -> None:
    """Stop the broker and delete its data (jars stay cached)."""
    config = _config()
    broker.reset(config)
    click.echo(f"kafka data deleted: {config.data}")

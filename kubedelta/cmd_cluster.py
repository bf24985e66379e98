"""`kubedelta cluster add|remove` and `kubedelta consumer-identity add|remove`: per-cluster
producer identities and read-only consumer identities on the secure local broker.

The admin connection is the local broker home's (``KUBEDELTA_HOME``, started with
``kubedelta kafka start --secure``): its admin password and CA are read from there.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from deltas import DEAD_LETTER_TOPIC, DEFAULT_TOPIC_PREFIX
from deltas.errors import KubedeltaError
from plumbing import broker
from plumbing.certs import issue_client
from plumbing.identity import (
    DEFAULT_GROUP_PREFIX,
    DEFAULT_NAMESPACE,
    SCRAM_MECHANISM,
    ProducerCredentials,
    cluster_user,
    consumer_user,
    new_password,
    render_yaml,
    secret_manifests,
)
from plumbing.kafka import KafkaConnection, TopicSpec
from plumbing.onboarding import add_cluster, add_consumer, remove_cluster, remove_consumer
from producers.config import TopicConfig


def _secure_home() -> broker.LocalBrokerConfig:
    config = broker.recorded_layout(broker.LocalBrokerConfig.from_env(os.environ))
    if not config.secure:
        raise click.ClickException(
            f"the broker in {config.home} is not secure: start one with "
            "`kubedelta kafka start --secure` (and its own KUBEDELTA_HOME / ports)"
        )
    return config


def _admin(config: broker.LocalBrokerConfig) -> KafkaConnection:
    try:
        return broker.admin_connection(config)
    except broker.BrokerError as exc:
        raise click.ClickException(str(exc)) from exc


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds a password
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    click.echo(f"wrote {output}", err=True)


@click.group("cluster")
def cluster() -> None:
    """Per-cluster producer identities: topic, SCRAM user, ACLs (secure broker)."""


@cluster.command("add")
@click.argument("name")
@click.option("--topic-prefix", default=DEFAULT_TOPIC_PREFIX, show_default=True)
@click.option("--partitions", type=int, default=1, show_default=True)
@click.option(
    "--replication",
    type=int,
    default=None,
    help="Replication factor of the topic (default: min(brokers, 3)).",
)
@click.option(
    "--bootstrap",
    default=None,
    help="Broker addresses as the cluster reaches them (default: the local broker's).",
)
@click.option("--namespace", default=DEFAULT_NAMESPACE, show_default=True)
@click.option(
    "--read-back/--no-read-back",
    default=True,
    show_default=True,
    help="Allow READ on its own topic (only), so a restarted producer reads it back and resends only what changed.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Secret manifests here (mode 0600) instead of stdout.",
)
def cluster_add(
    name: str,
    topic_prefix: str,
    partitions: int,
    replication: int | None,
    bootstrap: str | None,
    namespace: str,
    read_back: bool,
    output: Path | None,
) -> None:
    """Create cluster NAME's topic, a SCRAM principal User:cluster-NAME that may only write
    it, and print its credentials as the producer's Kubernetes Secret (the one
    deploy/k8s/producer reads); run again to rotate the password."""
    config = _secure_home()
    topic = TopicConfig(
        prefix=topic_prefix,
        partitions=partitions,
        replication=replication if replication is not None else min(config.brokers, 3),
    )
    spec = TopicSpec("", topic.partitions, topic.replication, topic.configs())
    try:
        granted = asyncio.run(
            add_cluster(_admin(config), name, spec, prefix=topic_prefix, read_back=read_back)
        )
        client = issue_client(config.tls, cluster_user(name)) if config.mtls else None
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    credentials = ProducerCredentials(
        cluster=name,
        bootstrap=bootstrap or config.bootstrap,
        username=granted.username,
        password=granted.password,
        ca_pem=config.tls.ca_cert.read_text(),
        secret_hash_key=new_password(),
        client_cert_pem=client.cert_pem.decode() if client else "",
        client_key_pem=client.key_pem.decode() if client else "",
        read_back=read_back,
    )
    for acl in granted.acls:
        click.echo(f"acl: {acl.describe()}", err=True)
    click.echo(
        "producer settings (ConfigMap kubedelta-producer-settings; mount the Secret's ca.crt"
        " at the CA path): "
        + " ".join(f"{k}={v}" for k, v in credentials.public_settings().items()),
        err=True,
    )
    _write(render_yaml(secret_manifests(credentials, namespace=namespace)), output)


@cluster.command("remove")
@click.argument("name")
@click.option("--topic-prefix", default=DEFAULT_TOPIC_PREFIX, show_default=True)
@click.option(
    "--delete-topic/--keep-topic",
    default=False,
    show_default=True,
    help="Also delete the cluster's topic (its history is gone for good).",
)
def cluster_remove(name: str, topic_prefix: str, delete_topic: bool) -> None:
    """Revoke cluster NAME: delete its SCRAM credential and ACLs (and its topic if asked)."""
    config = _secure_home()
    try:
        had, deleted = asyncio.run(
            remove_cluster(_admin(config), name, prefix=topic_prefix, delete_topic=delete_topic)
        )
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{cluster_user(name)}: credential {'deleted' if had else 'was absent'}, "
        f"{deleted} ACL(s) deleted, topic {'deleted' if delete_topic else 'kept'}"
    )


@click.group("consumer-identity")
def consumer_identity() -> None:
    """Read-only consumer identities: read every cluster topic, write dead letters."""


@consumer_identity.command("add")
@click.argument("name")
@click.option("--topic-prefix", default=DEFAULT_TOPIC_PREFIX, show_default=True)
@click.option("--dead-letter-topic", default=DEAD_LETTER_TOPIC, show_default=True)
@click.option("--group-prefix", default=DEFAULT_GROUP_PREFIX, show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the settings (KUBEDELTA_* lines, mode 0600) here instead of stdout.",
)
def consumer_add(
    name: str, topic_prefix: str, dead_letter_topic: str, group_prefix: str, output: Path | None
) -> None:
    """Create a consumer principal User:consumer-NAME and print its settings."""
    config = _secure_home()
    spec = TopicSpec(
        dead_letter_topic,
        replication=min(config.brokers, 3),
        configs={"cleanup.policy": "delete"},
    )
    try:
        granted = asyncio.run(
            add_consumer(
                _admin(config),
                name,
                prefix=topic_prefix,
                dead_letter=spec,
                group_prefix=group_prefix,
            )
        )
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    for acl in granted.acls:
        click.echo(f"acl: {acl.describe()}", err=True)
    settings = {
        "KUBEDELTA_BOOTSTRAP": config.bootstrap,
        "KUBEDELTA_DEAD_LETTER_TOPIC": dead_letter_topic,
        "KUBEDELTA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KUBEDELTA_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
        "KUBEDELTA_KAFKA_USERNAME": granted.username,
        "KUBEDELTA_KAFKA_PASSWORD": granted.password,
        "KUBEDELTA_KAFKA_SSL_CAFILE": str(config.tls.ca_cert),
    }
    if config.mtls:
        client = issue_client(config.tls, granted.username)
        cert = config.tls.folder / f"{granted.username}.crt"
        key = config.tls.folder / f"{granted.username}.key"
        cert.write_bytes(client.cert_pem)
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(client.key_pem)
        settings["KUBEDELTA_KAFKA_SSL_CERTFILE"] = str(cert)
        settings["KUBEDELTA_KAFKA_SSL_KEYFILE"] = str(key)
    _write("".join(f"{k}={v}\n" for k, v in settings.items()), output)


@consumer_identity.command("remove")
@click.argument("name")
def consumer_remove(name: str) -> None:
    """Revoke consumer identity NAME (credential, then ACLs)."""
    config = _secure_home()
    try:
        had, deleted = asyncio.run(remove_consumer(_admin(config), name))
    except KubedeltaError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{consumer_user(name)}: credential {'deleted' if had else 'was absent'}, "
        f"{deleted} ACL(s) deleted"
    )

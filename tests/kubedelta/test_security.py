"""Per-cluster identities on a real secure broker (SASL_SSL + SCRAM-SHA-512 + ACLs):
what each principal can and cannot do, that nothing unauthenticated gets in, that
revocation works, that the consumer refuses forged records, and that Secret data
never reaches the broker's disk. One secure broker serves the whole module."""

from __future__ import annotations

import asyncio
import base64
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from fault_support import (
    LiveConsumer,
    cli,
    connection_from_settings,
    differences,
    end_offsets,
    private_broker,
    segments_bytes,
    simulator_state,
    view_state,
    wait_until,
)
from prometheus_client import CollectorRegistry

from consumers import ConsumerConfig
from consumers.deadletter import HEADER_REASON
from deltas import (
    DEAD_LETTER_TOPIC,
    BodyEncoding,
    Delta,
    Op,
    ResourceKey,
    encode,
    partition_for,
    topic_for,
)
from plumbing import broker
from plumbing.identity import settings_from_manifests
from plumbing.kafka import KafkaConnection
from producers.agent import ClusterProducer, run_producers
from producers.config import (
    ApiConnectionConfig,
    FilterConfig,
    ProducerConfig,
    SinkConfig,
    TopicConfig,
    WatchConfig,
)
from producers.metrics import ProducerMetrics
from simulator import Simulator, SimulatorConfig
from store import StoreOptions

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def secure(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[broker.LocalBrokerConfig]:
    """One secure broker for the module (the shared broker made sure the jars exist)."""
    config = private_broker(tmp_path_factory.mktemp("secure") / "kafka", secure=True, heap="384m")
    broker.start(config)
    try:
        yield config
    finally:
        broker.stop(config)


class Identity:
    """A principal's settings as `kubedelta cluster add` / `consumer-identity add` print them."""

    def __init__(self, settings: dict[str, str], ca_pem: str, folder: Path) -> None:
        self.settings = settings
        self.connection = connection_from_settings(settings, folder, ca_pem)


async def add_cluster(
    secure: broker.LocalBrokerConfig, name: str, tmp: Path, *options: str
) -> Identity:
    text = await cli(secure, "cluster", "add", name, "--partitions", "2", *options)
    (secret,) = yaml.safe_load_all(text)
    ca_pem = base64.b64decode(secret["data"]["ca.crt"]).decode()
    return Identity(settings_from_manifests(text), ca_pem, tmp / name)


async def add_consumer(
    secure: broker.LocalBrokerConfig, name: str, tmp: Path, *options: str
) -> Identity:
    text = await cli(secure, "consumer-identity", "add", name, *options)
    settings = dict(line.split("=", 1) for line in text.splitlines() if line)
    ca_pem = await asyncio.to_thread(Path(settings["KUBEDELTA_KAFKA_SSL_CAFILE"]).read_text)
    return Identity(settings, ca_pem, tmp / name)


async def send(connection: KafkaConnection, topic: str, value: bytes, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(**connection.client_kwargs(), acks="all", enable_idempotence=True)
    try:
        await producer.start()
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_all(
    connection: KafkaConnection, topic: str, count: int, rounds: int = 50
) -> list[bytes | None]:
    consumer = AIOKafkaConsumer(**connection.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or {0})
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: list[bytes | None] = []
        for _ in range(rounds):
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                got += [m.value for m in batch]
            if len(got) >= count:
                break
        return got
    finally:
        await consumer.stop()


async def cannot_read(connection: KafkaConnection, topic: str) -> bool:
    """True when reading ``topic`` is refused, or finds nothing because it is invisible."""
    try:
        return await read_all(connection, topic, 1, rounds=10) == []
    except TopicAuthorizationFailedError:
        return True


async def refused(coro: object, timeout_s: float = 30.0) -> BaseException:
    """The error a connection attempt ends with (it must end with one)."""
    try:
        await asyncio.wait_for(coro, timeout_s)  # type: ignore[arg-type]
    except (KafkaError, OSError, ssl.SSLError) as exc:
        return exc
    raise AssertionError("the broker let it through")


async def test_a_clusters_credentials_write_only_its_own_topic(
    secure: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    alpha = await add_cluster(secure, "alpha", tmp_path)
    beta = await add_cluster(secure, "beta", tmp_path)
    admin = broker.admin_connection(secure)

    await send(alpha.connection, topic_for("alpha"), b"alpha's own record")
    with pytest.raises(TopicAuthorizationFailedError):
        await send(alpha.connection, topic_for("beta"), b"forged into beta")
    with pytest.raises(TopicAuthorizationFailedError):  # not even a topic of its own making
        await send(alpha.connection, "kubedelta.cluster.alpha2", b"x")
    await send(beta.connection, topic_for("beta"), b"beta's own record")

    # Nothing of alpha's landed in beta's topic: beta's one record is all there is.
    ends = await end_offsets(admin, [topic_for("beta")])
    assert sum(ends.values()) == 1
    assert await read_all(admin, topic_for("beta"), 1) == [b"beta's own record"]
    # A producer reads only its own topic (for its restart read-back), never another's.
    assert await cannot_read(alpha.connection, topic_for("beta"))
    assert await read_all(alpha.connection, topic_for("alpha"), 1) == [b"alpha's own record"]


async def test_anonymous_plaintext_and_wrong_passwords_are_refused(
    secure: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    gamma = await add_cluster(secure, "gamma", tmp_path)
    good = gamma.connection
    plaintext = KafkaConnection(bootstrap_servers=secure.bootstrap, request_timeout_ms=5000)
    tls_only = replace(good, security_protocol="SSL", sasl_mechanism=None, sasl_username=None)
    wrong_password = replace(good, sasl_password="not-the-password")
    unknown_user = replace(good, sasl_username="cluster-nobody")
    untrusted_ca = replace(good, ssl_cafile=None)  # the system CAs never signed our broker
    for connection in (plaintext, tls_only, wrong_password, unknown_user, untrusted_ca):
        await refused(send(connection, topic_for("gamma"), b"x"))
    admin = broker.admin_connection(secure)
    assert sum((await end_offsets(admin, [topic_for("gamma")])).values()) == 0

    # The controller listener wants a certificate from the local CA; TLS alone is not enough.
    no_cert = ssl.create_default_context(cafile=str(secure.tls.ca_cert))
    port = secure.controller_port
    assert not await asyncio.to_thread(broker.tls_answers_at, "127.0.0.1", port, no_cert)
    with_cert = broker.probe_ssl_context(secure)
    assert await asyncio.to_thread(broker.tls_answers_at, "127.0.0.1", port, with_cert)


async def test_a_removed_clusters_credentials_stop_working(
    secure: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    leaving = await add_cluster(secure, "leaving", tmp_path)
    topic = topic_for("leaving")
    producer = AIOKafkaProducer(
        **leaving.connection.client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"before", key=b"k")
        out = await cli(secure, "cluster", "remove", "leaving", "--keep-topic")
        # WRITE, DESCRIBE, READ on its topic and IDEMPOTENT_WRITE on the cluster.
        assert "credential deleted, 4 ACL(s) deleted, topic kept" in out
        # The connection it already has: its ACLs are gone, so writes are refused.
        with pytest.raises(TopicAuthorizationFailedError):
            for _ in range(50):  # the authorizer applies the deletion within moments
                await producer.send_and_wait(topic, b"after", key=b"k")
                await asyncio.sleep(0.1)
    finally:
        await producer.stop()
    # A new connection: the SCRAM credential is gone, authentication fails.
    await refused(send(leaving.connection, topic, b"after"))
    assert await read_all(broker.admin_connection(secure), topic, 1) == [b"before"]
    out = await cli(secure, "cluster", "remove", "leaving", "--delete-topic")
    assert "credential was absent, 0 ACL(s) deleted, topic deleted" in out


async def test_a_consumer_identity_reads_every_cluster_but_writes_only_dead_letters(
    secure: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    epsilon = await add_cluster(secure, "epsilon", tmp_path)
    await send(epsilon.connection, topic_for("epsilon"), b"epsilon record")
    reader = await add_consumer(secure, "reader", tmp_path)
    assert await read_all(reader.connection, topic_for("epsilon"), 1) == [b"epsilon record"]
    with pytest.raises(TopicAuthorizationFailedError):
        await send(reader.connection, topic_for("epsilon"), b"rewritten history")
    await send(reader.connection, DEAD_LETTER_TOPIC, b"a dead letter")
    # A cluster's producer reads nothing, not even dead letters about itself: the topic
    # is not even visible to it (no DESCRIBE), so a fetch finds nothing.
    assert await cannot_read(epsilon.connection, DEAD_LETTER_TOPIC)
    # Nor does a consumer read dead letters: it only writes them (an operator reads them).
    assert await cannot_read(reader.connection, DEAD_LETTER_TOPIC)


STRIP_KINDS = [("", "Secret"), ("", "ConfigMap"), ("", "Pod")]


def forged(cluster: str, claimed: str, name: str, seq: int, session: str) -> Delta:
    body = orjson.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "1"},
        }
    )
    return Delta(
        op=Op.UPSERT,
        cluster=claimed,
        key=ResourceKey("", "v1", "ConfigMap", "default", name),
        uid=f"uid-{name}",
        resource_version="1",
        seq=seq,
        session=session,
        body=body,
        body_encoding=BodyEncoding.JSON,
    )


async def test_secure_pipeline_keeps_secrets_off_disk_and_dead_letters_forgeries(
    secure: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    """The producer (cluster credentials) streams a simulated cluster with Secrets, the
    consumer (read-only credentials) materializes it; records forged with the cluster's
    own credentials (another cluster's id, a sequence going backwards) are dead-lettered;
    no Secret value is anywhere in the broker's log segments."""
    # Its own prefix and dead-letter topic: the other tests' clusters stay out of its view.
    prefix = f"kdsec{uuid.uuid4().hex[:8]}.cluster"
    dead_letters = f"{prefix}-deadletter"
    delta = await add_cluster(secure, "delta", tmp_path, "--topic-prefix", prefix)
    reader = await add_consumer(
        secure,
        "pipeline",
        tmp_path,
        "--topic-prefix",
        prefix,
        "--dead-letter-topic",
        dead_letters,
    )
    value = f"s3cr3t-{uuid.uuid4().hex}"
    encoded = base64.b64encode(value.encode()).decode()
    sim = Simulator(SimulatorConfig(clusters=("delta",), objects_per_cluster=60, seed=11))
    async with sim.serve() as base:
        cluster = sim.cluster("delta")
        cluster.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": "default"},
                "type": "Opaque",
                "data": {"password": encoded},
                "stringData": {"token": value},
            }
        )
        config = ProducerConfig(
            cluster="delta",
            kafka=delta.connection,
            api=ApiConnectionConfig(url=f"{base}/clusters/delta"),
            topic=TopicConfig(prefix=prefix, partitions=2),
            filters=FilterConfig(include_kinds=("secrets", "configmaps", "pods")),
            watch=WatchConfig(
                discovery_interval_s=0.5, watch_timeout_min_s=20, watch_timeout_max_s=30
            ),
            sink=SinkConfig(compression="none", linger_ms=1.0),  # bytes visible to a scan
            digest_interval_s=3600.0,
            restore_from_topic=True,  # READ on its own topic only: the restart read-back
        )
        stop = asyncio.Event()
        holder: list[ClusterProducer] = []
        task = asyncio.create_task(
            run_producers(
                [config], ProducerMetrics(CollectorRegistry()), stop, started=holder.extend
            )
        )
        await wait_until(lambda: bool(holder) and holder[0].ready(), 60, "producer ready")
        stop.set()
        await asyncio.wait_for(task, 60)
        expected = simulator_state(cluster, STRIP_KINDS, config.strip)

    # Forgeries, written with delta's own (valid) credentials into delta's own topic.
    topic = topic_for("delta", prefix)
    impostor = forged("delta", "alpha", "impostor", 10, "forger")
    first = forged("delta", "delta", "replayed", 100, "forger")
    replayed = forged("delta", "delta", "replayed-older", 50, "forger")
    partition = partition_for(first.kafka_key(), 2)
    producer = AIOKafkaProducer(
        **delta.connection.client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for d in (impostor, first, replayed):
            await producer.send_and_wait(topic, encode(d), key=d.kafka_key(), partition=partition)
    finally:
        await producer.stop()

    consumer_config = ConsumerConfig(
        data_dir=tmp_path / "view",
        connection=reader.connection,
        topic_prefix=prefix,
        dead_letter_topic=dead_letters,
        getmany_timeout_ms=200,
        metadata_refresh_ms=500,
        lag_refresh_s=0.2,
    )
    admin = broker.admin_connection(secure)
    options = StoreOptions(topic_prefix=prefix, history_retention_s=0)
    async with LiveConsumer(consumer_config, options) as live:
        await live.until_caught_up(await end_offsets(admin, [topic]), 60)
        assert live.view.clusters() == ["delta"]  # the impostor did not create "alpha"
        actual = view_state(live.view, "delta")
    # The first forged record of a fresh session is valid on its face: it is applied.
    assert actual.pop(("", "ConfigMap", "default", "replayed"), None) is not None
    assert differences(expected, actual) == ""

    letters = await read_dead_letters(admin, dead_letters)
    reasons = {h[HEADER_REASON] for h in letters}
    assert len(letters) == 2, reasons
    assert any("'alpha'" in r and "does not match" in r for r in reasons)
    assert any("went backwards" in r for r in reasons)

    raw = segments_bytes(secure, f"{topic}-*")
    assert b"kubedelta.io/data-keys" in raw  # the Secret's record is there, uncompressed
    assert value.encode() not in raw
    assert encoded.encode() not in raw
    everything = segments_bytes(secure)  # every topic, the metadata log included
    assert value.encode() not in everything and encoded.encode() not in everything


async def read_dead_letters(admin: KafkaConnection, topic: str) -> list[dict[str, str]]:
    consumer = AIOKafkaConsumer(**admin.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[dict[str, str]] = []
        while len(out) < end:
            for batch in (await consumer.getmany(tp, timeout_ms=500)).values():
                out += [{k: v.decode() for k, v in m.headers} for m in batch]
        return out
    finally:
        await consumer.stop()

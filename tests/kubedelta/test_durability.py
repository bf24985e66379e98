"""Durability under faults on a real three-node KRaft cluster (replication 3,
min.insync.replicas=2, acks=all): partition leaders killed with SIGKILL while a
producer streams churn, a producer and a consumer killed mid-stream, and every
broker unreachable for a minute. Afterwards the view equals the simulator's state,
object by object. One cluster serves the whole module."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fault_support import (
    CLI,
    LiveConsumer,
    differences,
    end_offsets,
    private_broker,
    simulator_state,
    view_state,
    wait_until,
)
from prometheus_client import CollectorRegistry

from consumers import ConsumerConfig
from deltas import BodyEncoding, Delta, Op, ResourceKey, decode_header, encode, partition_for
from deltas.keys import topic_for
from plumbing import broker
from plumbing.backoff import Backoff
from plumbing.kafka import KafkaConnection
from producers.agent import ClusterProducer, run_producers
from producers.config import (
    ApiConnectionConfig,
    FilterConfig,
    ProducerConfig,
    SinkConfig,
    StripConfig,
    TopicConfig,
    WatchConfig,
)
from producers.metrics import ProducerMetrics
from producers.records import OutRecord
from simulator import Simulator, SimulatorConfig
from store import StoreOptions

pytestmark = pytest.mark.kafka

KINDS = ("pods", "configmaps", "deployments.apps", "replicasets.apps")
STATE_KINDS = [("", "Pod"), ("", "ConfigMap"), ("apps", "Deployment"), ("apps", "ReplicaSet")]
FAST_WATCH = WatchConfig(
    watch_timeout_min_s=20,
    watch_timeout_max_s=30,
    idle_timeout_s=40,
    backoff=Backoff(initial_s=0.1, cap_s=1.0),
    discovery_interval_s=0.5,
    request_timeout_s=20,
)


@pytest.fixture(scope="module")
def three(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str
) -> Iterator[broker.LocalBrokerConfig]:
    """Three combined broker+controller nodes (the shared broker made sure the jars exist)."""
    config = private_broker(tmp_path_factory.mktemp("three") / "kafka", brokers=3, heap="256m")
    broker.start(config)
    try:
        yield config
    finally:
        broker.stop(config)


def connection(cluster: broker.LocalBrokerConfig) -> KafkaConnection:
    return KafkaConnection(bootstrap_servers=cluster.bootstrap, request_timeout_ms=10_000)


def consumer_config(
    cluster: broker.LocalBrokerConfig, data_dir: Path, prefix: str
) -> ConsumerConfig:
    return ConsumerConfig(
        data_dir=data_dir,
        connection=connection(cluster),
        topic_prefix=prefix,
        dead_letter_topic=f"{prefix}-deadletter",
        dead_letter_replication=3,
        getmany_timeout_ms=200,
        metadata_refresh_ms=500,
        lag_refresh_s=0.2,
    )


async def partition_states(
    cluster: broker.LocalBrokerConfig, topic: str
) -> list[dict[str, object]]:
    admin = AIOKafkaAdminClient(**connection(cluster).client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        return list(described["partitions"])
    finally:
        await admin.close()


async def fully_replicated(cluster: broker.LocalBrokerConfig, topic: str) -> bool:
    try:
        parts = await partition_states(cluster, topic)
    except Exception:  # a node is still coming up: not yet
        return False
    return bool(parts) and all(len(p["isr"]) == 3 for p in parts)  # type: ignore[arg-type]


async def converge(
    live: LiveConsumer,
    expected: dict[tuple[str, str, str, str], bytes],
    cluster: str,
    timeout_s: float,
) -> None:
    """Wait until the view holds exactly ``expected`` for ``cluster``; fail with the diff."""
    deadline = time.monotonic() + timeout_s
    diff = "never compared"
    while time.monotonic() < deadline:
        live.check()
        diff = differences(expected, view_state(live.view, cluster))
        if not diff:
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"the view did not converge to the simulator: {diff}")


async def read_headers(conn: KafkaConnection, topic: str) -> set[tuple[int, str, int]]:
    """(partition, session, seq) of every record of ``topic`` (tombstones have none)."""
    ends = await end_offsets(conn, [topic])
    consumer = AIOKafkaConsumer(**conn.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    found: set[tuple[int, str, int]] = set()
    try:
        tps = [TopicPartition(t, p) for (t, p) in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[(tp.topic, tp.partition)] > 0}
        while remaining:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=500)).items():
                for m in messages:
                    if m.value is not None:
                        h = decode_header(m.value)
                        found.add((tp.partition, h.session, h.seq))
                    if m.offset + 1 >= ends[(tp.topic, tp.partition)]:
                        remaining.discard(tp)
        return found
    finally:
        await consumer.stop()


@pytest.mark.timeout(300)
async def test_killing_partition_leaders_five_times_loses_no_acknowledged_delta(
    three: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    prefix = f"kddur{uuid.uuid4().hex[:8]}.cluster"
    sim = Simulator(
        SimulatorConfig(clusters=("d1",), objects_per_cluster=300, seed=21, history_size=200_000)
    )
    acked: list[OutRecord] = []
    async with sim.serve() as base:
        config = ProducerConfig(
            cluster="d1",
            kafka=connection(three),
            api=ApiConnectionConfig(url=f"{base}/clusters/d1"),
            topic=TopicConfig(prefix=prefix, partitions=3, replication=3),
            filters=FilterConfig(include_kinds=KINDS),
            watch=FAST_WATCH,
            sink=SinkConfig(linger_ms=2.0, backoff=Backoff(initial_s=0.1, cap_s=1.0)),
            digest_interval_s=3600.0,
        )
        stop = asyncio.Event()
        holder: list[ClusterProducer] = []
        task = asyncio.create_task(
            run_producers(
                [config],
                ProducerMetrics(CollectorRegistry()),
                stop,
                on_ack=lambda records, _now: acked.extend(records),
                started=holder.extend,
            )
        )
        await wait_until(lambda: bool(holder) and holder[0].ready(), 90, "producer ready")
        topic = holder[0].topic
        sim.start_churn(rate_per_s=60)
        killed: list[int] = []
        for _ in range(5):
            await asyncio.sleep(1.0)
            parts = await partition_states(three, topic)
            leader = int(random.choice(parts)["leader"])  # type: ignore[call-overload]
            pid = broker.node_pid(three, leader)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.append(leader)
            await asyncio.sleep(2.0)  # the producer meets the dead leader and fails over
            await asyncio.to_thread(broker.start, three)  # restarts just the killed node
            for _ in range(120):
                if await fully_replicated(three, topic):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError(f"{topic} did not get back to 3 in-sync replicas")
        await sim.stop_churn()
        await wait_until(
            lambda: holder[0].sink is not None and holder[0].sink.pending == 0, 60, "drain"
        )
        expected = simulator_state(sim.cluster("d1"), STATE_KINDS, StripConfig())
        stop.set()
        await asyncio.wait_for(task, 60)

    assert len(set(killed)) >= 1
    # Every acknowledged delta is in the log (a retried batch may be in it twice; fine).
    in_log = await read_headers(connection(three), topic)
    session = holder[0].session
    acked_ids = {(r.partition, session, r.seq) for r in acked if r.value is not None}
    assert acked_ids and not (acked_ids - in_log), f"{len(acked_ids - in_log)} acked deltas lost"
    # ... and consumed: the view equals the simulator, object by object.
    async with LiveConsumer(
        consumer_config(three, tmp_path / "view", prefix),
        StoreOptions(topic_prefix=prefix, history_retention_s=0),
    ) as live:
        await live.until_caught_up(await end_offsets(connection(three), [topic]), 60)
        await converge(live, expected, "d1", 10)


async def start_producer_process(
    env: dict[str, str], log: Path
) -> tuple[asyncio.subprocess.Process, str]:
    """`kubedelta produce` in its own process; returns it and its metrics/health URL."""
    handle = await asyncio.to_thread(log.open, "ab")
    process = await asyncio.create_subprocess_exec(
        *CLI, "produce", env={**os.environ, **env}, stdout=handle, stderr=handle
    )
    handle.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        urls = re.findall(r"metrics and health on (http://\S+)", text)
        if urls:
            return process, urls[-1]
        if process.returncode is not None:
            raise AssertionError(f"producer exited:\n{text[-3000:]}")
        await asyncio.sleep(0.2)
    raise AssertionError("producer did not start serving metrics")


async def metric(url: str, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as session, session.get(f"{url}/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


def producer_env(
    cluster: broker.LocalBrokerConfig, base: str, name: str, prefix: str
) -> dict[str, str]:
    return {
        "KUBEDELTA_CLUSTER": name,
        "KUBEDELTA_API_URL": f"{base}/clusters/{name}",
        "KUBEDELTA_BOOTSTRAP": cluster.bootstrap,
        "KUBEDELTA_TOPIC_PREFIX": prefix,
        "KUBEDELTA_PARTITIONS": "3",
        "KUBEDELTA_REPLICATION": "3",
        "KUBEDELTA_INCLUDE_KINDS": ",".join(KINDS),
        "KUBEDELTA_DISCOVERY_INTERVAL_S": "0.5",
        "KUBEDELTA_WATCH_TIMEOUT_MIN_S": "20",
        "KUBEDELTA_WATCH_TIMEOUT_MAX_S": "30",
        "KUBEDELTA_LINGER_MS": "2",
        "KUBEDELTA_HEALTH_PORT": "0",
        "KUBEDELTA_LOG_LEVEL": "INFO",
    }


@pytest.mark.timeout(240)
async def test_producer_killed_mid_stream_and_restarted_converges(
    three: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    prefix = f"kddur{uuid.uuid4().hex[:8]}.cluster"
    sim = Simulator(
        SimulatorConfig(clusters=("d2",), objects_per_cluster=300, seed=22, history_size=200_000)
    )
    async with sim.serve() as base:
        env = producer_env(three, base, "d2", prefix)
        log = tmp_path / "producer.log"
        process, url = await start_producer_process(env, log)
        async with LiveConsumer(
            consumer_config(three, tmp_path / "view", prefix),
            StoreOptions(topic_prefix=prefix, history_retention_s=0),
        ) as live:
            for _ in range(300):
                if await ready(url):
                    break
                await asyncio.sleep(0.2)
            sim.start_churn(rate_per_s=80)
            await asyncio.sleep(3.0)
            process.kill()  # SIGKILL mid-stream: whatever it had not sent is gone with it
            await process.wait()
            await asyncio.sleep(2.0)  # changes while no producer runs
            process, url = await start_producer_process(env, log)
            await asyncio.sleep(3.0)
            await sim.stop_churn()
            expected = simulator_state(sim.cluster("d2"), STATE_KINDS, StripConfig())
            print("converging", time.monotonic())
            await converge(live, expected, "d2", 90)
            print("converged", time.monotonic())
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 45) == 0
        print("producer exited", time.monotonic())


def bulk_records(prefix: str, keys: int, versions: int) -> list[tuple[str, int, bytes, bytes]]:
    """(topic, partition, key, value): ``versions`` versions of ``keys`` ConfigMaps."""
    topic = topic_for("bulk", prefix)
    out = []
    seq = 0
    for version in range(1, versions + 1):
        for i in range(keys):
            seq += 1
            name = f"cm-{i}"
            body = orjson.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "ns", "resourceVersion": str(version)},
                    "data": {"v": str(version)},
                }
            )
            delta = Delta(
                op=Op.UPSERT,
                cluster="bulk",
                key=ResourceKey("", "v1", "ConfigMap", "ns", name),
                uid=f"uid-{i}",
                resource_version=str(version),
                seq=seq,
                session="bulk-session",
                body_encoding=BodyEncoding.JSON,
                body=body,
            )
            key = delta.kafka_key()
            out.append((topic, partition_for(key, 3), key, encode(delta)))
    return out


@pytest.mark.timeout(180)
async def test_consumer_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    three: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    prefix = f"kddur{uuid.uuid4().hex[:8]}.cluster"
    keys, versions = 10_000, 4
    records = bulk_records(prefix, keys, versions)
    topic = records[0][0]
    conn = connection(three)
    from plumbing.kafka import TopicSpec, ensure_topics

    await ensure_topics(conn, [TopicSpec(topic, partitions=3, replication=3)])
    producer = AIOKafkaProducer(
        **conn.client_kwargs(),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=256 * 1024,
    )
    await producer.start()

    async def produce_slowly() -> None:  # ~8 s of writes, so the kills land mid-ingest
        for start in range(0, len(records), 2_000):
            pending = [
                await producer.send(t, value=v, key=k, partition=p)
                for t, p, k, v in records[start : start + 2_000]
            ]
            await asyncio.gather(*pending)
            await asyncio.sleep(0.4)

    data_dir = tmp_path / "view"
    cfg = consumer_config(three, data_dir, prefix)
    env = {
        "KUBEDELTA_DATA_DIR": str(data_dir),
        "KUBEDELTA_BOOTSTRAP": three.bootstrap,
        "KUBEDELTA_TOPIC_PREFIX": prefix,
        "KUBEDELTA_DEAD_LETTER_TOPIC": cfg.dead_letter_topic,
        "KUBEDELTA_DEAD_LETTER_REPLICATION": "3",
        "KUBEDELTA_BATCH_MAX_RECORDS": "3000",
        "KUBEDELTA_METADATA_REFRESH_MS": "500",
        "KUBEDELTA_HISTORY_RETENTION_S": "0",
    }
    writer = asyncio.create_task(produce_slowly())
    kills = 0
    try:
        while not writer.done() or kills < 4:
            process = await asyncio.create_subprocess_exec(
                *CLI,
                "consume",
                env={**os.environ, **env},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await asyncio.sleep(random.uniform(2.0, 3.5))  # start-up ~1.5 s, then ingest
            process.kill()
            await process.wait()
            kills += 1
        await writer
    finally:
        await producer.stop()
    assert kills >= 4

    async with LiveConsumer(cfg, StoreOptions(topic_prefix=prefix, history_retention_s=0)) as live:
        await live.until_caught_up(await end_offsets(conn, [topic]), 90)
        objects = view_state(live.view, "bulk")
        assert len(objects) == keys
        bodies: dict[str, str] = {}
        cursor: bytes | None = None
        while True:
            page = live.view.list_objects(clusters=["bulk"], after=cursor, limit=5_000)
            bodies |= {item.name: orjson.loads(item.body)["data"]["v"] for item in page.items}
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert set(bodies.values()) == {str(versions)}  # every object at its last version
        changes = 0
        position = 0
        while batch := live.view.changes_since(position, limit=10_000):
            changes += len(batch)
            position = batch[-1].position
        # One change per record: a batch applied twice would add none (same uid and
        # resourceVersion) but a lost one would leave fewer; a replay of a lost commit
        # adds exactly what it lost. So exactly keys * versions.
        assert changes == keys * versions
        status = live.view.cluster_status("bulk")
        assert status is not None and status.object_count == keys


@pytest.mark.timeout(300)
async def test_brokers_down_60s_producer_back_pressures_with_bounded_memory_and_loses_nothing(
    three: broker.LocalBrokerConfig, tmp_path: Path
) -> None:
    prefix = f"kddur{uuid.uuid4().hex[:8]}.cluster"
    sim = Simulator(
        SimulatorConfig(clusters=("d3",), objects_per_cluster=300, seed=23, history_size=500_000)
    )
    async with sim.serve() as base:
        env = producer_env(three, base, "d3", prefix) | {
            # A small bound: the outage fills it, so the watches must pause, not drop.
            "KUBEDELTA_BUFFER_RECORDS": "500",
            "KUBEDELTA_BUFFER_BYTES": str(4 * 1024 * 1024),
        }
        process, url = await start_producer_process(env, tmp_path / "producer.log")
        rss = psutil.Process(process.pid)
        for _ in range(300):
            if await ready(url):
                break
            await asyncio.sleep(0.2)
        sim.start_churn(rate_per_s=100)
        await asyncio.sleep(3.0)
        before = rss.memory_info().rss
        await asyncio.to_thread(broker.stop, three)
        samples = []
        outage_end = time.monotonic() + 60
        while time.monotonic() < outage_end:
            samples.append(rss.memory_info().rss)
            await asyncio.sleep(1.0)
        waits = await metric(url, "kubedelta_producer_backpressure_waits_total")
        await asyncio.to_thread(broker.start, three)
        await asyncio.sleep(3.0)
        await sim.stop_churn()
        expected = simulator_state(sim.cluster("d3"), STATE_KINDS, StripConfig())
        async with LiveConsumer(
            consumer_config(three, tmp_path / "view", prefix),
            StoreOptions(topic_prefix=prefix, history_retention_s=0),
        ) as live:
            await converge(live, expected, "d3", 90)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 60) == 0
    assert waits >= 1  # the buffer filled and the watches paused
    growth_mib = (max(samples) - before) / 2**20
    print(
        f"producer RSS before the outage {before / 2**20:.0f} MiB, peak growth {growth_mib:.1f} MiB"
    )
    assert growth_mib < 64, f"producer RSS grew {growth_mib:.0f} MiB during the outage"

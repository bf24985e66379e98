"""Helpers for the security and durability tests: private brokers on free ports, the
CLI as a process, an in-process consumer with its own view, and per-object
comparison of a view with the simulator's state. Everything is real: brokers,
RocksDB, HTTP; only the Kubernetes API is the simulator."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers import ConsumerConfig
from consumers.runner import Consumer
from plumbing import broker
from plumbing.kafka import KafkaConnection
from producers.config import StripConfig
from producers.strip import fingerprint, strip_object
from simulator import ClusterState
from store import StoreOptions, View

CLI = [sys.executable, "-c", "from kubedelta.cli import main; main()"]
Key = tuple[str, str, str, str]  #: group, kind, namespace, name


def _first_ephemeral_port() -> int:
    """Lowest port the kernel picks as the source port of outgoing connections."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port_block(size: int) -> int:
    """First port of ``size`` consecutive free loopback ports (random start: parallel runs),
    below the ephemeral range. A test that stops a broker for a minute restarts it on the
    same ports; in the ephemeral range a client's outgoing connection may take one in the
    meantime (a client retrying the stopped broker can even connect to itself: TCP
    simultaneous open) and the restart fails with "port taken by another process"."""
    rng = random.Random()
    top = max(min(_first_ephemeral_port(), 40_000) - size, 20_001)
    for _ in range(500):
        first = rng.randrange(20_000, top)
        if all(broker.port_is_free("127.0.0.1", first + i) for i in range(size)):
            return first
    raise RuntimeError(f"no block of {size} free ports")


def private_broker(home: Path, **options: object) -> broker.LocalBrokerConfig:
    """A broker (or cluster) in its own home on free ports, sharing the fetched jars."""
    brokers = int(options.get("brokers", 1))  # type: ignore[call-overload]
    port = free_port_block(2 * brokers)
    return broker.LocalBrokerConfig(
        home=home,
        port=port,
        controller_port=port + brokers,
        jars=broker.LocalBrokerConfig.from_env(os.environ).libs,
        stop_timeout_s=10.0,  # the last nodes of a quorum cannot shut down cleanly: kill sooner
        **options,  # type: ignore[arg-type]
    )


async def cli(home: broker.LocalBrokerConfig, *args: str, check: bool = True) -> str:
    """Run ``kubedelta ARGS`` against ``home`` (KUBEDELTA_HOME) in a process; its stdout."""
    env = {**os.environ, "KUBEDELTA_HOME": str(home.home.parent)}
    result = await asyncio.to_thread(
        subprocess.run, [*CLI, *args], env=env, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubedelta {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def connection_from_settings(
    settings: dict[str, str], folder: Path, ca_pem: str | None = None
) -> KafkaConnection:
    """The KafkaConnection a producer/consumer builds from KUBEDELTA_* settings; the CA
    (a path in the pod) is written to ``folder``."""
    cafile = settings.get("KUBEDELTA_KAFKA_SSL_CAFILE", "")
    if ca_pem is not None:
        folder.mkdir(parents=True, exist_ok=True)
        cafile = str(folder / "ca.crt")
        Path(cafile).write_text(ca_pem)
    return KafkaConnection(
        bootstrap_servers=settings["KUBEDELTA_BOOTSTRAP"],
        security_protocol=settings["KUBEDELTA_KAFKA_SECURITY_PROTOCOL"],
        sasl_mechanism=settings["KUBEDELTA_KAFKA_SASL_MECHANISM"],
        sasl_username=settings["KUBEDELTA_KAFKA_USERNAME"],
        sasl_password=settings["KUBEDELTA_KAFKA_PASSWORD"],
        ssl_cafile=cafile,
        request_timeout_ms=10_000,
    )


async def wait_until(
    predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(poll_s)


# ---------------------------------------------------------------- expected vs actual state


def simulator_state(
    cluster: ClusterState, kinds: Iterable[tuple[str, str]], strip: StripConfig
) -> dict[Key, bytes]:
    """(group, kind, namespace, name) -> fingerprint of the simulator's objects, stripped
    exactly as the producer strips them before sending."""
    wanted = set(kinds)
    out: dict[Key, bytes] = {}
    for obj in cluster.objects():
        group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
        kind = str(obj.get("kind", ""))
        if (group, kind) not in wanted:
            continue
        meta = obj["metadata"]
        strip_object(obj, group=group, version=version, kind=kind, config=strip)
        out[(group, kind, meta.get("namespace", ""), meta["name"])] = fingerprint(obj)
    return out


def view_state(view: View, cluster: str) -> dict[Key, bytes]:
    """The same map from the view's objects of ``cluster``."""
    out: dict[Key, bytes] = {}
    cursor: bytes | None = None
    while True:
        page = view.list_objects(clusters=[cluster], after=cursor, limit=10_000)
        for item in page.items:
            out[(item.group, item.kind, item.namespace, item.name)] = fingerprint(
                orjson.loads(item.body)
            )
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def differences(expected: dict[Key, bytes], actual: dict[Key, bytes]) -> str:
    """A short human description of how two states differ ("" when equal)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    stale = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    if not (missing or extra or stale):
        return ""
    return (
        f"{len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, "
        f"{len(stale)} stale {stale[:3]}"
    )


# ---------------------------------------------------------------- an in-process consumer


class LiveConsumer:
    """``consumers.runner.Consumer`` in a task of this loop, with its own view."""

    def __init__(self, config: ConsumerConfig, options: StoreOptions | None = None) -> None:
        self.view = View.open(config.data_dir, options or StoreOptions(history_retention_s=0))
        self.consumer = Consumer(config, self.view)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveConsumer:
        self.task = asyncio.create_task(self.consumer.run(self.stop))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 60)
        await self.consumer.close()
        self.view.close()

    def check(self) -> None:
        if self.task is not None and self.task.done():
            self.task.result()
            raise AssertionError("the consumer stopped")

    async def until_caught_up(self, targets: dict[tuple[str, int], int], timeout_s: float) -> None:
        def reached() -> bool:
            self.check()
            stored = self.view.resume_offsets()
            return all(stored.get(p, 0) >= o for p, o in targets.items())

        await wait_until(reached, timeout_s, f"the view to reach {targets}")


async def end_offsets(
    connection: KafkaConnection, topics: Iterable[str]
) -> dict[tuple[str, int], int]:
    """(topic, partition) -> end offset, for every partition of ``topics``."""
    consumer = AIOKafkaConsumer(**connection.client_kwargs(), enable_auto_commit=False)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            parts = consumer.partitions_for_topic(topic)
            if not parts:
                await consumer._client.force_metadata_update()
                parts = consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def segments_bytes(config: broker.LocalBrokerConfig, topic_glob: str = "*") -> bytes:
    """Every log segment of every node (data as it sits on disk)."""
    chunks = []
    for node in config.nodes():
        for segment in sorted(node.data.glob(f"{topic_glob}/*.log")):
            chunks.append(segment.read_bytes())
    return b"".join(chunks)

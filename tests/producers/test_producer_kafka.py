"""The producer against the simulator and the real broker."""

from __future__ import annotations

import asyncio
import base64
import copy
import os
import uuid
from dataclasses import replace
from typing import Any

import orjson
import pytest
from producer_harness import (
    FAST_WATCH,
    Rec,
    end_offsets,
    latest_bodies,
    producer_config,
    read_records,
    resource_ops,
    simulator_fingerprints,
    start_producer,
    topic_fingerprints,
    wait_until,
)

from deltas import Op, RunningDigest, decode
from plumbing import broker
from producers.config import SinkConfig
from simulator import ClusterState, Simulator, SimulatorConfig

pytestmark = pytest.mark.kafka

KINDS = [("", "Pod"), ("", "ConfigMap"), ("apps", "Deployment")]


def objects_of(cluster: ClusterState, kind: str) -> list[dict[str, Any]]:
    return [o for o in cluster.objects() if o.get("kind") == kind]


def key_of(obj: dict[str, Any]) -> bytes:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    meta = obj["metadata"]
    return f"{group}\x00{obj['kind']}\x00{meta.get('namespace', '')}\x00{meta['name']}".encode()


def changed_content(obj: dict[str, Any], tag: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"].pop("resourceVersion", None)
    out["metadata"].setdefault("labels", {})["kubedelta-test"] = tag
    return out


async def test_410_with_deletes_in_the_gap_sends_exact_tombstones_and_only_changes(
    kafka_bootstrap: str,
) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=400, seed=3))
    async with sim.serve() as base:
        config = producer_config(kafka_bootstrap, f"{base}/clusters/c1")
        running = await start_producer(config)
        await running.wait_ready()
        topic = running.producer.topic
        before = await end_offsets(kafka_bootstrap, topic)
        c = sim.cluster("c1")
        pods = objects_of(c, "Pod")
        maps = objects_of(c, "ConfigMap")
        # No await between these lines: the producer sees none of it on its watches.
        c.force_410_now()
        deleted = [pods[0], pods[1], pods[2], maps[0]]
        for obj in deleted:
            meta = obj["metadata"]
            c.delete(*_gk(obj), meta.get("namespace", ""), meta["name"])
        changed = [pods[3], maps[1]]
        for obj in changed:
            c.update(changed_content(obj, "gap"))
        noise = [pods[4], maps[2]]
        for obj in noise:
            c.update(obj)  # new resourceVersion, same content
        c.expire_history()

        await wait_until(
            lambda: running.metric_sum("kubedelta_producer_relists_total", reason="gone") >= 3,
            60,
            "a relist of every kind after the 410",
            running,
        )
        await running.wait_drained()
        records = await read_records(kafka_bootstrap, topic, before)
        ops = resource_ops(records)
        assert sorted(k for op, k in ops if op == "DELETE") == sorted(key_of(o) for o in deleted)
        assert sorted(k for op, k in ops if op == "UPSERT") == sorted(key_of(o) for o in changed)
        tombstones = [r.key for r in records if r.value is None]
        assert sorted(tombstones) == sorted(key_of(o) for o in deleted)
        # Every relist is framed by START/END markers in every partition, END not full.
        markers = [
            decode(r.value) for r in records if r.value is not None and r.key.startswith(b"\xff")
        ]
        ends = [m for m in markers if m.op is Op.RELIST_END]
        assert len(ends) == 3 * 3 and all(m.relist is not None and not m.relist.full for m in ends)
        # The topic as a whole equals the simulator.
        everything = await read_records(kafka_bootstrap, topic)
        assert topic_fingerprints(latest_bodies(everything)) == simulator_fingerprints(
            c, KINDS, config
        )
        await running.close()


def last_digests(records: list[Rec]) -> dict[int, tuple[int, int]]:
    out = {}
    for rec in records:
        if rec.value is not None and rec.key.startswith(b"\xffdigest"):
            marker = decode(rec.value).digest
            assert marker is not None and marker.partition == rec.partition
            out[rec.partition] = (marker.count, marker.hash)
    return out


def digests_of_latest_state(records: list[Rec]) -> dict[int, tuple[int, int]]:
    latest: dict[bytes, tuple[int, str] | None] = {}
    for rec in records:
        if rec.key.startswith(b"\xff"):
            continue
        if rec.value is None:
            latest[rec.key] = None
            continue
        delta = decode(rec.value)
        latest[rec.key] = (rec.partition, delta.resource_version) if delta.op is Op.UPSERT else None
    digests: dict[int, RunningDigest] = {}
    for key, entry in latest.items():
        if entry is not None:
            digests.setdefault(entry[0], RunningDigest()).add(key, entry[1])
    return {p: (d.count, d.hash) for p, d in digests.items()}


def _gk(obj: dict[str, Any]) -> tuple[str, str]:
    return str(obj["apiVersion"]).rpartition("/")[0], str(obj["kind"])


async def test_restart_resends_only_what_changed_while_down(kafka_bootstrap: str) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=3000, seed=4))
    async with sim.serve() as base:
        config = producer_config(
            kafka_bootstrap, f"{base}/clusters/c1", kinds=("pods", "configmaps")
        )
        first = await start_producer(config)
        await first.wait_ready()
        await first.close()
        topic = first.producer.topic
        c = sim.cluster("c1")
        pods = objects_of(c, "Pod")
        maps = objects_of(c, "ConfigMap")
        assert len(pods) + len(maps) > 1100
        targets = (pods + maps)[:1000]
        # 1,000 changes to distinct objects: 700 content updates, 200 deletes, 100 creates;
        # plus 100 noise-only updates that must not be resent.
        for obj in targets[:700]:
            c.update(changed_content(obj, "while-down"))
        for obj in targets[700:900]:
            meta = obj["metadata"]
            c.delete(*_gk(obj), meta.get("namespace", ""), meta["name"])
        created = []
        for i in range(100):
            new = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": f"new-while-down-{i}", "namespace": "default"},
                "data": {"i": str(i)},
            }
            created.append(c.create(new))
        for obj in (pods + maps)[1000:1100]:
            c.update(obj)

        before = await end_offsets(kafka_bootstrap, topic)
        second = await start_producer(config)
        await second.wait_ready()
        await second.wait_drained()
        assert second.producer.restore_stats.upserts >= len(pods) + len(maps)
        records = await read_records(kafka_bootstrap, topic, before)
        ops = resource_ops(records)
        assert len(ops) == 1000
        assert sorted(k for op, k in ops if op == "DELETE") == sorted(
            key_of(o) for o in targets[700:900]
        )
        everything = await read_records(kafka_bootstrap, topic)
        assert topic_fingerprints(latest_bodies(everything)) == simulator_fingerprints(
            c, [("", "Pod"), ("", "ConfigMap")], config
        )
        # The DIGEST sent after the sync describes exactly what each partition holds.
        assert last_digests(everything) == digests_of_latest_state(everything)
        await second.close()


async def test_secret_data_never_reaches_the_kafka_log(kafka_bootstrap: str) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    encoded = base64.b64encode(value.encode()).decode()
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=50, seed=5))
    async with sim.serve() as base:
        c = sim.cluster("c1")
        applied = orjson.dumps(
            {"apiVersion": "v1", "kind": "Secret", "data": {"password": encoded}}
        )
        c.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "db",
                    "namespace": "default",
                    "annotations": {
                        "kubectl.kubernetes.io/last-applied-configuration": applied.decode()
                    },
                },
                "type": "Opaque",
                "data": {"password": encoded},
                "stringData": {"token": value},
            }
        )
        # No compression: a value in the log would be visible to a byte scan.
        config = producer_config(
            kafka_bootstrap,
            f"{base}/clusters/c1",
            kinds=("secrets",),
            sink=SinkConfig(compression="none", linger_ms=1.0),
        )
        running = await start_producer(config)
        await running.wait_ready()
        topic = running.producer.topic
        bodies = latest_bodies(await read_records(kafka_bootstrap, topic))
        secret = orjson.loads(bodies[b"\x00Secret\x00default\x00db"])
        assert "data" not in secret and "stringData" not in secret
        assert secret["metadata"]["annotations"]["kubedelta.io/data-keys"] == "password,token"
        await running.close()

    data_dir = broker.LocalBrokerConfig.from_env(os.environ).data
    segments = [p for p in data_dir.glob(f"{topic}-*/*.log")]
    assert segments, f"no log segments of {topic} under {data_dir}"
    raw = b"".join(p.read_bytes() for p in segments)
    assert b"kubedelta.io/data-keys" in raw  # the records are there, uncompressed
    assert value.encode() not in raw
    assert encoded.encode() not in raw


async def test_crd_added_at_run_time_starts_streaming_and_removal_deletes(
    kafka_bootstrap: str,
) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=50, seed=6))
    async with sim.serve() as base:
        config = producer_config(
            kafka_bootstrap, f"{base}/clusters/c1", kinds=("configmaps", "*.runtime.example.com")
        )
        running = await start_producer(config)
        await running.wait_ready()
        c = sim.cluster("c1")
        c.add_crd(group="runtime.example.com", version="v1", kind="Gadget", plural="gadgets")
        c.create(
            {
                "apiVersion": "runtime.example.com/v1",
                "kind": "Gadget",
                "metadata": {"name": "g1", "namespace": "default"},
                "spec": {"size": 3},
            }
        )
        key = b"runtime.example.com\x00Gadget\x00default\x00g1"
        topic = running.producer.topic

        async def topic_has(k: bytes) -> bool:
            return k in latest_bodies(await read_records(kafka_bootstrap, topic))

        for _ in range(200):
            if await topic_has(key):
                break
            await asyncio.sleep(0.1)
        assert await topic_has(key)
        assert ("runtime.example.com", "Gadget") in {
            k.group_kind for k in running.producer.watched_kinds()
        }

        c.remove_crd("runtime.example.com", "Gadget")
        for _ in range(200):
            if not await topic_has(key):
                break
            await asyncio.sleep(0.1)
        assert not await topic_has(key)
        await wait_until(
            lambda: (
                ("runtime.example.com", "Gadget")
                not in {k.group_kind for k in running.producer.watched_kinds()}
            ),
            30,
            "the Gadget watch to stop",
            running,
        )
        await running.close()


async def test_noise_only_updates_send_nothing(kafka_bootstrap: str) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=200, seed=7))
    async with sim.serve() as base:
        config = producer_config(kafka_bootstrap, f"{base}/clusters/c1", kinds=("configmaps",))
        running = await start_producer(config)
        await running.wait_ready()
        topic = running.producer.topic
        await running.wait_drained()
        before = await end_offsets(kafka_bootstrap, topic)
        c = sim.cluster("c1")
        maps = objects_of(c, "ConfigMap")[:20]
        for obj in maps:
            c.update(obj)  # resourceVersion only
            noisy = copy.deepcopy(obj)
            noisy["metadata"].pop("resourceVersion", None)
            noisy["metadata"]["managedFields"] = [{"manager": "test", "operation": "Update"}]
            c.update(noisy)  # managedFields only

        def modified() -> float:
            return running.metric(
                "kubedelta_producer_events_observed_total", kind="configmaps", event="MODIFIED"
            )

        await wait_until(lambda: modified() >= 40, 30, "40 MODIFIED events observed", running)
        await running.wait_drained()
        assert await end_offsets(kafka_bootstrap, topic) == before
        assert (
            running.metric(
                "kubedelta_producer_events_suppressed_total", kind="configmaps", reason="unchanged"
            )
            >= 40
        )
        # A real change still goes through.
        c.update(changed_content(maps[0], "real"))
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_records_sent_total", kind="configmaps", op="upsert"
                )
                > 0
                and running.producer.sink is not None
                and running.producer.sink.pending == 0
                and modified() >= 41
            ),
            30,
            "the real change",
            running,
        )
        records = await read_records(kafka_bootstrap, topic, before)
        assert resource_ops(records) == [("UPSERT", key_of(maps[0]))]
        await running.close()


async def test_429_backs_off_and_resumes_without_relist(kafka_bootstrap: str) -> None:
    sim = Simulator(SimulatorConfig(clusters=("c1",), objects_per_cluster=100, seed=8))
    async with sim.serve() as base:
        config = producer_config(
            kafka_bootstrap,
            f"{base}/clusters/c1",
            kinds=("configmaps",),
            watch=replace(FAST_WATCH, discovery_interval_s=3600.0),  # the 429s are the watch's
        )
        running = await start_producer(config)
        await running.wait_ready()
        c = sim.cluster("c1")
        relists = running.metric_sum("kubedelta_producer_relists_total")
        c.throttle(3)
        c.drop_connections()
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_watch_restarts_total", kind="configmaps", reason="throttled"
                )
                >= 3
            ),
            30,
            "three throttled reconnects",
            running,
        )
        target = objects_of(c, "ConfigMap")[0]
        c.update(changed_content(target, "after-429"))
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_records_sent_total", kind="configmaps", op="upsert"
                )
                > 0
                and running.producer.sink is not None
                and running.producer.sink.pending == 0
                and running.metric(
                    "kubedelta_producer_events_observed_total", kind="configmaps", event="MODIFIED"
                )
                >= 1
            ),
            30,
            "the change after the throttling",
            running,
        )
        # 5xx: the same, counted as errors.
        c.fail(2, status=503)
        c.drop_connections()
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_watch_restarts_total", kind="configmaps", reason="error"
                )
                >= 3
            ),  # the dropped stream + two 503s
            30,
            "503s retried",
            running,
        )
        assert running.metric_sum("kubedelta_producer_relists_total") == relists
        await running.close()


async def test_silent_watch_is_reopened_without_relist(kafka_bootstrap: str) -> None:
    # Bookmarks every 60 s, idle timeout 1 s: the watch goes quiet and must be reopened.
    sim = Simulator(
        SimulatorConfig(clusters=("c1",), objects_per_cluster=50, seed=12, bookmark_interval_s=60)
    )
    async with sim.serve() as base:
        config = producer_config(
            kafka_bootstrap,
            f"{base}/clusters/c1",
            kinds=("configmaps",),
            watch=replace(FAST_WATCH, idle_timeout_s=1.0, discovery_interval_s=3600.0),
        )
        running = await start_producer(config)
        await running.wait_ready()
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_watch_restarts_total", kind="configmaps", reason="idle"
                )
                >= 2
            ),
            30,
            "two idle reconnects",
            running,
        )
        assert running.metric_sum("kubedelta_producer_relists_total") == 1
        c = sim.cluster("c1")
        target = objects_of(c, "ConfigMap")[0]
        c.update(changed_content(target, "after-idle"))
        await wait_until(
            lambda: (
                running.metric(
                    "kubedelta_producer_events_observed_total", kind="configmaps", event="MODIFIED"
                )
                >= 1
                and running.producer.sink is not None
                and running.producer.sink.pending == 0
            ),
            30,
            "the change after idle reconnects",
            running,
        )
        bodies = latest_bodies(await read_records(kafka_bootstrap, running.producer.topic))
        assert b'"kubedelta-test":"after-idle"' in bodies[key_of(target)]
        await running.close()


# A 30 s outage and two broker starts: ~60 s on an idle machine, much more on a loaded one.
@pytest.mark.timeout(300)
async def test_kafka_down_30s_during_churn_loses_nothing(
    kafka_bootstrap: str, tmp_path: Any
) -> None:
    main = broker.LocalBrokerConfig.from_env(os.environ)
    port = _free_port_pair()
    second = broker.LocalBrokerConfig(
        home=tmp_path / "kafka2", port=port, controller_port=port + 1, jars=main.libs, heap="256m"
    )
    bootstrap = second.bootstrap
    # The producer starts while this broker is still coming up: it must wait for it.
    broker_up = asyncio.create_task(asyncio.to_thread(broker.start, second))
    try:
        sim = Simulator(
            SimulatorConfig(clusters=("c1",), objects_per_cluster=300, seed=9, history_size=100_000)
        )
        async with sim.serve() as base:
            config = producer_config(
                bootstrap,
                f"{base}/clusters/c1",
                kinds=("pods", "configmaps", "deployments.apps", "replicasets.apps"),
                # Small bound: the outage fills it, so the watches must pause, not drop.
                sink=SinkConfig(
                    linger_ms=2.0, buffer_max_records=300, buffer_max_bytes=4 * 1024 * 1024
                ),
            )
            running = await start_producer(config)
            await broker_up
            await running.wait_ready(180)
            sim.start_churn(rate_per_s=100)
            await asyncio.sleep(2)
            await asyncio.to_thread(broker.stop, second)
            await asyncio.sleep(30)
            await asyncio.to_thread(broker.start, second)
            await asyncio.sleep(2)
            await sim.stop_churn()
            assert running.metric("kubedelta_producer_backpressure_waits_total") >= 1
            c = sim.cluster("c1")
            wanted = simulator_fingerprints(
                c,
                [("", "Pod"), ("", "ConfigMap"), ("apps", "Deployment"), ("apps", "ReplicaSet")],
                config,
            )

            async def converged() -> bool:
                if running.producer.sink is None or running.producer.sink.pending:
                    return False
                bodies = latest_bodies(await read_records(bootstrap, running.producer.topic))
                return topic_fingerprints(bodies) == wanted

            for _ in range(240):
                if await converged():
                    break
                await asyncio.sleep(0.5)
            assert await converged()
            await running.close()
    finally:
        await asyncio.gather(broker_up, return_exceptions=True)
        await asyncio.to_thread(broker.stop, second)


def _free_port_pair() -> int:
    for port in range(19192, 19992, 2):
        if broker.port_is_free("127.0.0.1", port) and broker.port_is_free("127.0.0.1", port + 1):
            return port
    raise RuntimeError("no free port pair for a second broker")

"""Multiplexed mode: many clusters in one process share a Kafka producer and batch
their start-up round trips, and each still writes only its own topic."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from producer_harness import (
    end_offsets,
    latest_bodies,
    producer_config,
    read_records,
    resource_ops,
    simulator_fingerprints,
    wait_until,
)
from prometheus_client import CollectorRegistry

from deltas import decode, topic_for
from plumbing.kafka import KafkaConnection, admin_client
from producers.agent import ClusterProducer, run_producers
from producers.config import ApiConnectionConfig, ProducerConfig
from producers.metrics import ProducerMetrics
from simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.kafka

CLUSTERS = ("m1", "m2", "m3", "m4")
KINDS = [("", "Pod"), ("", "ConfigMap"), ("apps", "Deployment")]


async def run_until_ready(
    configs: list[ProducerConfig],
) -> tuple[asyncio.Event, asyncio.Task[list[ClusterProducer]], list[ClusterProducer]]:
    stop = asyncio.Event()
    holder: list[ClusterProducer] = []
    task = asyncio.create_task(
        run_producers(configs, ProducerMetrics(CollectorRegistry()), stop, started=holder.extend)
    )
    await wait_until(
        lambda: len(holder) == len(configs) and all(p.ready() for p in holder), 90, "all ready"
    )
    return stop, task, holder


async def test_clusters_share_one_kafka_side_and_write_only_their_own_topic(
    kafka_bootstrap: str,
) -> None:
    sim = Simulator(SimulatorConfig(clusters=CLUSTERS, objects_per_cluster=150, seed=8))
    async with sim.serve() as base:
        for name in CLUSTERS:  # an object only this cluster has
            sim.cluster(name).create(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"only-in-{name}", "namespace": "default"},
                    "data": {"cluster": name},
                }
            )
        first = producer_config(kafka_bootstrap, "")
        configs = [
            replace(first, cluster=name, api=ApiConnectionConfig(url=f"{base}/clusters/{name}"))
            for name in CLUSTERS
        ]
        topics = [topic_for(name, first.topic.prefix) for name in CLUSTERS]
        try:
            stop, task, producers = await run_until_ready(configs)
            side = producers[0].kafka_side
            assert all(p.kafka_side is side for p in producers)
            assert side.batches == (1, 1)  # one topic preparation, one read-back for all
            stop.set()
            await asyncio.wait_for(task, 60)

            for name, topic in zip(CLUSTERS, topics, strict=True):
                records = await read_records(kafka_bootstrap, topic)
                assert {decode(r.value).cluster for r in records if r.value is not None} == {name}
                bodies = latest_bodies(records)
                own = [k for k in bodies if k.endswith(b"\x00only-in-" + name.encode())]
                assert len(own) == 1
                assert not [k for k in bodies if b"\x00only-in-" in k and k not in own]
                expected = simulator_fingerprints(sim.cluster(name), KINDS, configs[0])
                assert set(bodies) == set(expected)

            # A restart reads every topic back (one batch) and resends nothing.
            before = {t: await end_offsets(kafka_bootstrap, t) for t in topics}
            stop, task, producers = await run_until_ready(configs)
            for p in producers:
                assert p.restored_objects == len(
                    simulator_fingerprints(sim.cluster(p.cluster), KINDS, configs[0])
                )
            assert producers[0].kafka_side.batches == (1, 1)
            stop.set()
            await asyncio.wait_for(task, 60)
            for topic in topics:
                assert resource_ops(await read_records(kafka_bootstrap, topic, before[topic])) == []
        finally:
            admin = admin_client(KafkaConnection(bootstrap_servers=kafka_bootstrap))
            await admin.start()
            try:
                await admin.delete_topics(topics)
            finally:
                await admin.close()


async def test_clusters_with_different_kafka_identities_do_not_share_a_producer(
    kafka_bootstrap: str,
) -> None:
    sim = Simulator(SimulatorConfig(clusters=("i1", "i2"), objects_per_cluster=40, seed=9))
    async with sim.serve() as base:
        first = producer_config(kafka_bootstrap, "", kinds=("configmaps",))
        configs = [
            replace(
                first,
                cluster=name,
                api=ApiConnectionConfig(url=f"{base}/clusters/{name}"),
                # Another client id stands for another identity (the local broker has no auth).
                kafka=KafkaConnection(bootstrap_servers=kafka_bootstrap, client_id=f"id-{name}"),
            )
            for name in ("i1", "i2")
        ]
        topics = [topic_for(c.cluster, first.topic.prefix) for c in configs]
        try:
            stop, task, producers = await run_until_ready(configs)
            a, b = (p.kafka_side for p in producers)
            assert a is not b and a.transport is not b.transport
            assert a.connection.client_id == "id-i1" and b.connection.client_id == "id-i2"
            stop.set()
            await asyncio.wait_for(task, 60)
            for name, topic in zip(("i1", "i2"), topics, strict=True):
                records = await read_records(kafka_bootstrap, topic)
                assert {decode(r.value).cluster for r in records if r.value is not None} == {name}
        finally:
            admin = admin_client(KafkaConnection(bootstrap_servers=kafka_bootstrap))
            await admin.start()
            try:
                await admin.delete_topics(topics)
            finally:
                await admin.close()


@pytest.mark.parametrize("process_lists", [1, 3])
async def test_lists_in_progress_are_bounded_across_the_clusters_of_a_process(
    kafka_bootstrap: str, process_lists: int
) -> None:
    names = tuple(f"g{i}" for i in range(5))
    sim = Simulator(SimulatorConfig(clusters=names, objects_per_cluster=60, seed=10))
    for name in names:  # slow answers: LISTs that may overlap, do
        sim.cluster(name).faults.latency_ms = 30
    async with sim.serve() as base:
        first = producer_config(kafka_bootstrap, "")
        watch = replace(first.watch, list_concurrency=2, process_list_concurrency=process_lists)
        configs = [
            replace(
                first,
                cluster=name,
                api=ApiConnectionConfig(url=f"{base}/clusters/{name}"),
                watch=watch,
            )
            for name in names
        ]
        topics = [topic_for(name, first.topic.prefix) for name in names]
        try:
            stop, task, _ = await run_until_ready(configs)
            stop.set()
            await asyncio.wait_for(task, 60)
            assert 1 <= sim.api.peak_lists_in_flight <= process_lists
        finally:
            admin = admin_client(KafkaConnection(bootstrap_servers=kafka_bootstrap))
            await admin.start()
            try:
                await admin.delete_topics(topics)
            finally:
                await admin.close()

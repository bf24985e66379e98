"""Encoded deltas survive a trip through the real broker byte for byte and in order.

10,000 Pod-like deltas (~1.5 KB each) go to a fresh compacted per-cluster topic
with the producer settings the agent uses (acks=all, idempotence, large
requests), and come back identical, partition by partition, in send order.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from deltas import (
    BodyEncoding,
    Delta,
    Op,
    ResourceKey,
    decode_header,
    encode,
    encode_object,
    partition_for,
    topic_for,
)

COUNT = 10_000
PARTITIONS = 3
MAX_RECORD = 8 * 1024 * 1024


def pod_delta(cluster: str, session: str, seq: int) -> Delta:
    """A realistic-ish Pod upsert: labels, owner, ~1.5 KB JSON body."""
    namespace = f"team-{seq % 17}"
    name = f"web-{seq // 3}-{uuid.UUID(int=seq).hex[:5]}"
    uid = str(uuid.UUID(int=(1 << 64) + seq))
    labels = {"app": f"web-{seq % 50}", "pod-template-hash": f"{seq * 7919 % 99991:05d}"}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": str(100_000 + seq),
            "labels": labels,
            "annotations": {"moniker.spinnaker.io/application": f"web{seq % 5}"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"web-{seq % 50}", "uid": "rs"}],
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": f"registry.example/web:{seq % 13}",
                    "env": [
                        {"name": f"VAR_{i}", "value": "x" * (20 + seq % 40)} for i in range(12)
                    ],
                    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                }
            ],
            "nodeName": f"node-{seq % 31}",
        },
        "status": {"phase": "Running", "podIP": f"10.{seq % 250}.{seq % 200}.{seq % 100}"},
    }
    return Delta(
        op=Op.UPSERT,
        cluster=cluster,
        key=ResourceKey("", "v1", "Pod", namespace, name),
        uid=uid,
        resource_version=str(100_000 + seq),
        seq=seq,
        session=session,
        event_time_ms=1_700_000_000_000 + seq,
        labels=labels,
        owners=("rs",),
        app=f"web{seq % 5}",
        body_encoding=BodyEncoding.JSON,
        body=encode_object(pod, BodyEncoding.JSON),
    )


async def create_compacted_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    num_partitions=PARTITIONS,
                    replication_factor=1,
                    topic_configs={
                        "cleanup.policy": "compact",
                        "max.message.bytes": str(MAX_RECORD),
                    },
                )
            ]
        )
    finally:
        await admin.close()


async def consume(
    bootstrap: str, topic: str, expected: int
) -> dict[int, list[tuple[bytes, bytes]]]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_RECORD,
        fetch_max_bytes=4 * MAX_RECORD,
    )
    await consumer.start()
    received: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        total = 0
        async with asyncio.timeout(60):
            while total < expected:
                batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for partition, records in batches.items():
                    for record in records:
                        assert record.key is not None and record.value is not None
                        received[partition.partition].append((record.key, record.value))
                        total += 1
    finally:
        await consumer.stop()
    return received


@pytest.mark.kafka
async def test_ten_thousand_deltas_roundtrip_byte_identical(kafka_bootstrap: str) -> None:
    cluster = f"rt-{uuid.uuid4().hex[:12]}"
    topic = topic_for(cluster)
    session = uuid.uuid4().hex
    await create_compacted_topic(kafka_bootstrap, topic)

    records = [
        (d.kafka_key(), encode(d)) for d in (pod_delta(cluster, session, s) for s in range(COUNT))
    ]
    assert 1000 <= sum(len(value) for _, value in records) / COUNT <= 2500

    sent: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(PARTITIONS)}
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_RECORD,
        linger_ms=5,
    )
    await producer.start()
    try:
        pending = []
        for key, value in records:
            partition = partition_for(key, PARTITIONS)
            sent[partition].append((key, value))
            pending.append(await producer.send(topic, value=value, key=key, partition=partition))
        metadata = await asyncio.gather(*pending)
    finally:
        await producer.stop()
    assert all(m.topic == topic for m in metadata)

    received = await consume(kafka_bootstrap, topic, COUNT)

    for partition in range(PARTITIONS):
        assert len(received[partition]) == len(sent[partition])
        assert received[partition] == sent[partition]  # byte-identical, in send order
    # And the bytes still decode: headers carry the right cluster and sequence.
    first_key, first_value = received[partition_for(records[0][0], PARTITIONS)][0]
    header = decode_header(first_value)
    assert (header.cluster, header.seq, header.session) == (cluster, 0, session)
    assert orjson.loads(first_value[header.body_offset :])["kind"] == "Pod"
    assert first_key == records[0][0]

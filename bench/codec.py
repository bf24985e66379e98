"""`kubedelta bench codec`: how fast the delta codec is and how big its records are.

Builds realistic ~2 KB Pods (random uids, IPs, image digests: real entropy, so
compression numbers are honest), encodes them as deltas and measures, per
second: encode, header-only decode (what consumers do), full decode to a dict
(what only the query side does), and record sizes raw and compressed in
Kafka-sized batches. Rates are the best of ``repeats`` passes (the least
disturbed by other processes); sizes are means per record.
"""

from __future__ import annotations

import gc
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click
import lz4.frame
import zstandard

from bench.report import Machine, Progress, Report, emit, json_option
from deltas import (
    BodyEncoding,
    Delta,
    Op,
    ResourceKey,
    decode_header,
    decode_object,
    encode,
    encode_object,
)
from deltas.index_fields import app_of, labels_of, owners_of


@dataclass(frozen=True, slots=True)
class CodecBenchConfig:
    records: int = 10_000  #: Pods per pass; enough for stable rates, whole run ~5 s
    batch_size: int = 500  #: records per compressed batch, about one Kafka producer batch
    repeats: int = 3  #: passes per rate; the best is reported
    seed: int = 1  #: makes the generated Pods (and so the sizes) reproducible
    zstd_level: int = 3  #: zstandard's default level, also Kafka's default for zstd


# -- realistic Pods ----------------------------------------------------------------------


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _uid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _ip(rng: random.Random, prefix: str) -> str:
    return f"{prefix}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _time(rng: random.Random) -> str:
    return f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z"


def make_pod(rng: random.Random, index: int) -> dict[str, Any]:
    """A Pod of a Deployment as the API server serves it (managedFields stripped)."""
    app = rng.choice(["checkout", "cart", "search", "payments", "catalog", "frontend"])
    template_hash = _hex(rng, 10)
    suffix = _hex(rng, 5)
    namespace = f"team-{index % 40}"
    started = _time(rng)
    image = f"registry.example.com/{app}/server@sha256:{_hex(rng, 64)}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{app}-{template_hash}-{suffix}",
            "namespace": namespace,
            "uid": _uid(rng),
            "resourceVersion": str(rng.randrange(10**6, 10**9)),
            "creationTimestamp": started,
            "labels": {
                "app": app,
                "pod-template-hash": template_hash,
                "tier": rng.choice(["web", "api", "worker"]),
                "version": f"v{rng.randrange(1, 40)}",
            },
            "annotations": {
                "moniker.spinnaker.io/application": app,
                "prometheus.io/scrape": "true",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": f"{app}-{template_hash}",
                    "uid": _uid(rng),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "server",
                    "image": image,
                    "ports": [{"containerPort": 8080, "protocol": "TCP", "name": "http"}],
                    "resources": {
                        "requests": {"cpu": f"{rng.randrange(1, 9) * 100}m", "memory": "256Mi"},
                        "limits": {"memory": f"{rng.randrange(1, 5) * 512}Mi"},
                    },
                    "volumeMounts": [
                        {
                            "name": f"kube-api-access-{_hex(rng, 5)}",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": True,
                        }
                    ],
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": app,
            "nodeName": f"ip-{_ip(rng, '10.1').replace('.', '-')}.ec2.internal",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": _time(rng),
                }
                for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
            ],
            "hostIP": _ip(rng, "10.1"),
            "podIP": (pod_ip := _ip(rng, "100.64")),
            "podIPs": [{"ip": pod_ip}],
            "startTime": started,
            "qosClass": "Burstable",
            "containerStatuses": [
                {
                    "name": "server",
                    "ready": True,
                    "restartCount": rng.randrange(3),
                    "image": image,
                    "imageID": image,
                    "containerID": f"containerd://{_hex(rng, 64)}",
                    "started": True,
                    "state": {"running": {"startedAt": started}},
                }
            ],
        },
    }


def pod_delta(obj: dict[str, Any], encoding: BodyEncoding, seq: int) -> Delta:
    """The delta a producer sends for ``obj``: index fields lifted into the header."""
    meta = obj["metadata"]
    return Delta(
        op=Op.UPSERT,
        cluster="bench",
        key=ResourceKey("", "v1", "Pod", meta["namespace"], meta["name"]),
        uid=meta["uid"],
        resource_version=meta["resourceVersion"],
        seq=seq,
        session="bench-session",
        event_time_ms=1_700_000_000_000 + seq,
        labels=labels_of(obj),
        owners=owners_of(obj),
        app=app_of(obj),
        body_encoding=encoding,
        body=encode_object(obj, encoding),
    )


# -- measurement -------------------------------------------------------------------------


def best_rate(
    items: Sequence[Any], step: Callable[[Any], object], repeats: int, bar: Progress
) -> float:
    """Items per second of the fastest of ``repeats`` passes of ``step`` over ``items``."""
    best = float("inf")
    for _ in range(repeats):
        gc.disable()  # a collection mid-pass measures the allocator, not the codec
        try:
            start = time.perf_counter()
            for item in items:
                step(item)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
        bar.advance()
    return len(items) / best


def full_decode(record: bytes) -> dict[str, Any]:
    header = decode_header(record)
    return decode_object(memoryview(record)[header.body_offset :], header.body_encoding)


def batches(records: Sequence[bytes], keys: Sequence[bytes], size: int) -> list[bytes]:
    """Keys and values of ``size`` records back to back: what a Kafka batch compresses."""
    return [
        b"".join(k + v for k, v in zip(keys[i : i + size], records[i : i + size], strict=True))
        for i in range(0, len(records), size)
    ]


def compressed_per_record(
    blobs: Sequence[bytes], compress: Callable[[bytes], bytes], n_records: int
) -> tuple[float, float]:
    """(compressed bytes per record, input MB compressed per second)."""
    start = time.perf_counter()
    total = sum(len(compress(b)) for b in blobs)
    elapsed = time.perf_counter() - start
    return total / n_records, sum(map(len, blobs)) / elapsed / 1e6


def run(config: CodecBenchConfig, bar: Progress | None = None) -> Report:
    rng = random.Random(config.seed)
    pods = [make_pod(rng, i) for i in range(config.records)]
    rates = 6
    bar = bar or Progress(rates * config.repeats + 1, "codec")
    with bar:
        deltas_json = [pod_delta(p, BodyEncoding.JSON, i) for i, p in enumerate(pods)]
        deltas_msgpack = [pod_delta(p, BodyEncoding.MSGPACK, i) for i, p in enumerate(pods)]
        records_json = [encode(d) for d in deltas_json]
        records_msgpack = [encode(d) for d in deltas_msgpack]
        keys = [d.kafka_key() for d in deltas_json]
        bar.advance()

        r = config.repeats
        encode_rate = best_rate(deltas_json, encode, r, bar)
        producer_rate = best_rate(
            pods, lambda p: encode(pod_delta(p, BodyEncoding.JSON, 0)), r, bar
        )
        header_rate = best_rate(records_json, decode_header, r, bar)
        header_rate_msgpack = best_rate(records_msgpack, decode_header, r, bar)
        full_json_rate = best_rate(records_json, full_decode, r, bar)
        full_msgpack_rate = best_rate(records_msgpack, full_decode, r, bar)

    n = config.records
    zstd = zstandard.ZstdCompressor(level=config.zstd_level)
    json_blobs = batches(records_json, keys, config.batch_size)
    msgpack_blobs = batches(records_msgpack, keys, config.batch_size)
    zstd_json, zstd_json_speed = compressed_per_record(json_blobs, zstd.compress, n)
    zstd_msgpack, _ = compressed_per_record(msgpack_blobs, zstd.compress, n)
    lz4_json, lz4_json_speed = compressed_per_record(json_blobs, lz4.frame.compress, n)
    lz4_msgpack, _ = compressed_per_record(msgpack_blobs, lz4.frame.compress, n)

    header_bytes = sum(
        len(rec) - len(d.body) for rec, d in zip(records_json, deltas_json, strict=True)
    )
    metrics: dict[str, int | float] = {
        "encode_per_s": round(encode_rate),
        "encode_from_object_per_s": round(producer_rate),
        "header_decode_per_s": round(header_rate),
        "header_decode_msgpack_records_per_s": round(header_rate_msgpack),
        "full_decode_json_per_s": round(full_json_rate),
        "full_decode_msgpack_per_s": round(full_msgpack_rate),
        "header_to_full_ratio": header_rate / full_json_rate,
        "header_to_full_msgpack_ratio": header_rate_msgpack / full_msgpack_rate,
        "prefix_and_header_bytes": round(header_bytes / n, 1),
        "record_bytes_json": round(sum(map(len, records_json)) / n, 1),
        "record_bytes_msgpack": round(sum(map(len, records_msgpack)) / n, 1),
        "key_bytes": round(sum(map(len, keys)) / n, 1),
        "batch_bytes_per_record_zstd_json": round(zstd_json, 1),
        "batch_bytes_per_record_zstd_msgpack": round(zstd_msgpack, 1),
        "batch_bytes_per_record_lz4_json": round(lz4_json, 1),
        "batch_bytes_per_record_lz4_msgpack": round(lz4_msgpack, 1),
        "zstd_compress_mb_per_s_json": round(zstd_json_speed, 1),
        "lz4_compress_mb_per_s_json": round(lz4_json_speed, 1),
    }
    return Report("codec", asdict(config), metrics, Machine.current())


_DEFAULTS = CodecBenchConfig()


@click.command("codec")
@click.option(
    "--records",
    type=click.IntRange(min=1),
    default=_DEFAULTS.records,
    show_default=True,
    help="Pods encoded per pass.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=_DEFAULTS.batch_size,
    show_default=True,
    help="Records per compressed batch.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=_DEFAULTS.repeats,
    show_default=True,
    help="Passes per rate; the best is reported.",
)
@click.option(
    "--seed",
    type=int,
    default=_DEFAULTS.seed,
    show_default=True,
    help="Seed for the generated Pods.",
)
@json_option
def command(records: int, batch_size: int, repeats: int, seed: int, json_path: Path | None) -> None:
    """Delta codec: encode / header-only decode / full decode rates and record sizes."""
    config = CodecBenchConfig(records=records, batch_size=batch_size, repeats=repeats, seed=seed)
    emit(run(config), json_path)

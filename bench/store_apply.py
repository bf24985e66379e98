"""`kubedelta bench store-apply`: how fast the view applies batches of Pod deltas (no Kafka).

Builds realistic ~2 KB Pods (``bench.codec.make_pod``) spread over several
cluster topics and partitions, encodes them with the real wire format, then
applies them to a fresh store on disk in consumer-sized batches:

1. **create**: every Pod once (new keys: index puts, bloom-filtered misses);
2. **update**: every Pod again with a new resourceVersion and status (same
   labels: the common case; with history kept, the old version moves to history);
3. **replay**: the update batches again (all below the stored offsets: skipped).

Reports records/s of each phase (plan + commit, the consumer's whole store
cost), the split between plan and commit, and bytes on disk per object after a
flush and after a full compaction. Encoding the records is not timed.
"""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import click
import psutil

from bench.codec import make_pod, pod_delta
from bench.report import Machine, Progress, Report, emit, json_option
from deltas import BodyEncoding, encode, partition_for, topic_for
from store import SourceRecord, StoreOptions, View


@dataclass(frozen=True, slots=True)
class StoreApplyConfig:
    records: int = 100_000  #: Pods; each is created once and updated once
    batch_size: int = 2_000  #: records per plan+commit, about one consumer poll
    clusters: int = 4  #: cluster topics the Pods are spread over
    partitions: int = 6  #: partitions per topic
    history_retention_s: int = 3600  #: 0 disables history (StoreOptions.history_retention_s)
    encoding: str = "json"  #: body encoding on the wire: "json" or "msgpack" (converted)
    seed: int = 1  #: reproducible Pods
    path: Path | None = None  #: store directory; a fresh temp dir (deleted after) if None


def _records(
    config: StoreApplyConfig, bar: Progress
) -> tuple[list[SourceRecord], list[SourceRecord]]:
    """(create records, update records) in a realistic interleaving of topics/partitions."""
    rng = random.Random(config.seed)
    encoding = BodyEncoding.JSON if config.encoding == "json" else BodyEncoding.MSGPACK
    offsets: dict[tuple[str, int], int] = {}
    now_ms = int(time.time() * 1000)

    def record(cluster: str, delta: Any) -> SourceRecord:
        key = delta.kafka_key()
        tp = (topic_for(cluster), partition_for(key, config.partitions))
        off = offsets.get(tp, 0)
        offsets[tp] = off + 1
        return SourceRecord(tp[0], tp[1], off, key, encode(delta), delta.event_time_ms)

    creates: list[SourceRecord] = []
    updates: list[SourceRecord] = []
    pods = []
    for i in range(config.records):
        cluster = f"bench-{i % config.clusters}"
        pod = make_pod(rng, i)
        pods.append((cluster, pod))
        d = replace(pod_delta(pod, encoding, i + 1), cluster=cluster, event_time_ms=now_ms + i)
        creates.append(record(cluster, d))
        if i % 10_000 == 0:
            bar.advance()
    for i, (cluster, pod) in enumerate(pods):
        pod["metadata"]["resourceVersion"] = str(int(pod["metadata"]["resourceVersion"]) + 1)
        pod["status"]["containerStatuses"][0]["restartCount"] += 1
        seq = config.records + i + 1
        d = replace(
            pod_delta(pod, encoding, seq),
            cluster=cluster,
            event_time_ms=now_ms + config.records + i,
        )
        updates.append(record(cluster, d))
        if i % 10_000 == 0:
            bar.advance()
    return creates, updates


def _chunks(records: Sequence[SourceRecord], size: int) -> Iterator[Sequence[SourceRecord]]:
    for i in range(0, len(records), size):
        yield records[i : i + size]


def apply_all(
    view: View, records: Sequence[SourceRecord], batch_size: int, bar: Progress
) -> dict[str, float]:
    """Apply ``records`` in batches; seconds spent planning and committing."""
    plan_s = commit_s = 0.0
    gc.disable()  # generational GC pauses scale with the live records, not with the store
    try:
        for chunk in _chunks(records, batch_size):
            t0 = time.perf_counter()
            plan = view.plan(chunk)
            t1 = time.perf_counter()
            view.commit(plan)
            t2 = time.perf_counter()
            plan_s += t1 - t0
            commit_s += t2 - t1
            bar.advance()
    finally:
        gc.enable()
    return {"plan_s": plan_s, "commit_s": commit_s, "total_s": plan_s + commit_s}


def run(config: StoreApplyConfig) -> Report:
    n_batches = -(-config.records // config.batch_size)
    bar = Progress(2 * (config.records // 10_000 + 1) + 3 * n_batches, "store-apply")
    tmp = None
    path = config.path
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="kubedelta-store-bench-"))
        path = tmp / "store"
    opts = StoreOptions(history_retention_s=config.history_retention_s)
    try:
        with bar:
            creates, updates = _records(config, bar)
            view = View.open(path, opts)
            try:
                create = apply_all(view, creates, config.batch_size, bar)
                update = apply_all(view, updates, config.batch_size, bar)
                replay = apply_all(view, updates, config.batch_size, bar)
                view.flush()
                flushed = view.disk_usage()
                view.compact()
                compacted = view.disk_usage()
                objects = view.count()
            finally:
                view.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    n = config.records
    body_bytes = sum(len(r.value or b"") for r in creates) / n
    metrics: dict[str, int | float] = {
        "create_records_per_s": n / create["total_s"],
        "update_records_per_s": n / update["total_s"],
        "replay_skip_records_per_s": n / replay["total_s"],
        "create_plan_share_ratio": create["plan_s"] / create["total_s"],
        "update_plan_share_ratio": update["plan_s"] / update["total_s"],
        "create_plan_us_per_record": create["plan_s"] / n * 1e6,
        "create_commit_us_per_record": create["commit_s"] / n * 1e6,
        "update_plan_us_per_record": update["plan_s"] / n * 1e6,
        "update_commit_us_per_record": update["commit_s"] / n * 1e6,
        "record_mean_bytes": body_bytes,
        "disk_bytes_per_object_flushed": flushed / max(objects, 1),
        "disk_bytes_per_object_compacted": compacted / max(objects, 1),
        "objects": objects,
        "process_rss_bytes": psutil.Process().memory_info().rss,
    }
    params = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return Report("store-apply", params, metrics, Machine.current())


_DEFAULTS = StoreApplyConfig()


@click.command("store-apply")
@click.option(
    "--records",
    type=int,
    default=_DEFAULTS.records,
    show_default=True,
    help="Pods (each created and updated once).",
)
@click.option(
    "--batch-size",
    type=int,
    default=_DEFAULTS.batch_size,
    show_default=True,
    help="Records per plan+commit.",
)
@click.option("--clusters", type=int, default=_DEFAULTS.clusters, show_default=True)
@click.option("--partitions", type=int, default=_DEFAULTS.partitions, show_default=True)
@click.option(
    "--history-retention-s",
    type=int,
    default=_DEFAULTS.history_retention_s,
    show_default=True,
    help="0 disables history.",
)
@click.option(
    "--encoding",
    type=click.Choice(["json", "msgpack"]),
    default="json",
    show_default=True,
    help="Body encoding on the wire.",
)
@click.option(
    "--path",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Store directory (default: a temp dir, deleted after).",
)
@json_option
def command(
    records: int,
    batch_size: int,
    clusters: int,
    partitions: int,
    history_retention_s: int,
    encoding: str,
    path: Path | None,
    json_path: Path | None,
) -> None:
    """Apply Pod deltas to a fresh store (create, update, replay) and report records/s."""
    config = StoreApplyConfig(
        records=records,
        batch_size=batch_size,
        clusters=clusters,
        partitions=partitions,
        history_retention_s=history_retention_s,
        encoding=encoding,
        path=path,
    )
    emit(run(config), json_path)

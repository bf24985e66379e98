"""`kubedelta bench store-apply`: how fast the view applies batches of Pod deltas (no Kafka).

Builds realistic ~2.2 KB Pods (``bench.codec.make_pod``) spread over several
cluster topics and partitions, encodes them with the real wire format, and
applies them to a fresh store on disk in consumer-sized batches, each ordered
as a poll returns it (grouped by partition):

1. **create**: every Pod once (new keys: index puts, bloom-filtered misses);
2. **update**: every Pod again with a new resourceVersion and status (same
   labels: the common case; with history kept, the old version moves to history);
3. **replay**: the update batches again (all below the stored offsets: skipped).

Records are generated one batch at a time (the generator replays the same seed
for the update phase), so memory holds the store and one batch, and the RSS
reported is the store's. Only ``plan`` + ``commit`` are timed. Reports records/s
per phase, the plan/commit split (main-thread CPU), and bytes on disk per object
after a flush and after a full compaction.
"""

from __future__ import annotations

import gc
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import click
import psutil

from bench.codec import make_pod, pod_delta
from bench.errors import BenchError
from bench.report import Machine, Progress, Report, emit, json_option
from deltas import BodyEncoding, Delta, encode, partition_for, topic_for
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


class PodStream:
    """Batches of records for the create and update phases, generated on demand."""

    def __init__(self, config: StoreApplyConfig) -> None:
        self.config = config
        self.offsets: dict[tuple[str, int], int] = {}
        self.now_ms = int(time.time() * 1000)
        self.encoding = BodyEncoding.JSON if config.encoding == "json" else BodyEncoding.MSGPACK

    def _record(self, cluster: str, delta: Delta) -> SourceRecord:
        key = delta.kafka_key()
        tp = (topic_for(cluster), partition_for(key, self.config.partitions))
        off = self.offsets.get(tp, 0)
        self.offsets[tp] = off + 1
        return SourceRecord(tp[0], tp[1], off, key, encode(delta), delta.event_time_ms)

    def batches(self, update: bool) -> Iterator[list[SourceRecord]]:
        cfg = self.config
        rng = random.Random(cfg.seed)  # the same Pods in both phases
        batch: list[SourceRecord] = []
        base = cfg.records if update else 0
        for i in range(cfg.records):
            cluster = f"bench-{i % cfg.clusters}"
            pod = make_pod(rng, i)
            if update:
                meta = pod["metadata"]
                meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
                pod["status"]["containerStatuses"][0]["restartCount"] += 1
            delta = replace(
                pod_delta(pod, self.encoding, base + i + 1),
                cluster=cluster,
                event_time_ms=self.now_ms + base + i,
            )
            batch.append(self._record(cluster, delta))
            if len(batch) == cfg.batch_size:
                yield as_polled(batch)
                batch = []
        if batch:
            yield as_polled(batch)


def as_polled(batch: list[SourceRecord]) -> list[SourceRecord]:
    """Order a batch as a consumer poll returns it: grouped by partition, offsets
    ascending (aiokafka ``getmany`` gives one list per partition)."""
    return sorted(batch, key=lambda r: (r.topic, r.partition, r.offset))


@dataclass(slots=True)
class PhaseTimes:
    records: int = 0
    wall_s: float = 0.0  #: plan + commit, wall clock
    plan_cpu_s: float = 0.0  #: main-thread CPU in plan (excludes RocksDB background threads)
    commit_cpu_s: float = 0.0  #: main-thread CPU in commit

    def per_s(self) -> float:
        return self.records / self.wall_s if self.wall_s else 0.0

    def us(self, seconds: float) -> float:
        return seconds / max(self.records, 1) * 1e6


def apply_batches(view: View, batches: Iterator[list[SourceRecord]], bar: Progress) -> PhaseTimes:
    """Plan and commit each batch; only those two calls are timed."""
    t = PhaseTimes()
    gc.disable()  # generational GC pauses scale with the generator's garbage, not the store
    try:
        for batch in batches:
            w0, c0 = time.perf_counter(), time.thread_time()
            plan = view.plan(batch)
            c1 = time.thread_time()
            view.commit(plan)
            c2, w1 = time.thread_time(), time.perf_counter()
            t.records += len(batch)
            t.wall_s += w1 - w0
            t.plan_cpu_s += c1 - c0
            t.commit_cpu_s += c2 - c1
            bar.advance()
            gc.collect(0)
    finally:
        gc.enable()
    return t


#: Point GETs timed on the compacted store (objects spread over every cluster).
GET_SAMPLE = 2_000


def time_gets(view: View, config: StoreApplyConfig) -> float:
    """Mean wall time of a GET (us) on the compacted store, second of two passes over the
    same sample (the first warms the block cache). Compacted files are what a long-lived
    store serves from: their index and filter blocks once thrashed a too-small cache
    shard, ~1 ms per GET, invisible on a freshly written store."""
    per_cluster = max(1, GET_SAMPLE // config.clusters)
    items = [
        item
        for c in range(config.clusters)
        for item in view.list_objects(clusters=[f"bench-{c}"], limit=per_cluster).items
    ]
    if not items:
        return 0.0
    keys = [(i.cluster, i.group, i.kind, i.namespace, i.name) for i in items]
    elapsed = 0.0
    for _ in range(2):
        started = time.perf_counter()
        for key in keys:
            if view.get(*key) is None:
                raise BenchError(f"object {key} listed but not found by GET")
        elapsed = time.perf_counter() - started
    return elapsed / len(keys) * 1e6


def run(config: StoreApplyConfig) -> Report:
    n_batches = -(-config.records // config.batch_size)
    tmp = None
    path = config.path
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="kubedelta-store-bench-"))
        path = tmp / "store"
    opts = StoreOptions(history_retention_s=config.history_retention_s)
    stream = PodStream(config)
    try:
        with Progress(3 * n_batches, "store-apply") as bar:
            view = View.open(path, opts)
            try:
                create = apply_batches(view, stream.batches(update=False), bar)
                before_update = dict(stream.offsets)
                update = apply_batches(view, stream.batches(update=True), bar)
                stream.offsets = before_update  # the same records again: a replay
                replay = apply_batches(view, stream.batches(update=True), bar)
                rss = psutil.Process().memory_info().rss
                view.flush()
                flushed = view.disk_usage()
                view.compact()
                compacted = view.disk_usage()
                objects = view.count()
                get_us = time_gets(view, config)
            finally:
                view.close()
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    metrics: dict[str, int | float] = {
        "create_records_per_s": create.per_s(),
        "update_records_per_s": update.per_s(),
        "replay_skip_records_per_s": replay.per_s(),
        "create_plan_cpu_us_per_record": create.us(create.plan_cpu_s),
        "create_commit_cpu_us_per_record": create.us(create.commit_cpu_s),
        "update_plan_cpu_us_per_record": update.us(update.plan_cpu_s),
        "update_commit_cpu_us_per_record": update.us(update.commit_cpu_s),
        "disk_bytes_per_object_flushed": flushed / max(objects, 1),
        "disk_bytes_per_object_compacted": compacted / max(objects, 1),
        "objects": objects,
        "rss_bytes": rss,
        "get_us_compacted": get_us,
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
    help="Body encoding on the wire (msgpack is converted to JSON at apply).",
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

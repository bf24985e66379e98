"""kill -9 the consumer again and again while it ingests: after every restart the
view is exactly a replay of the log prefix it claims to hold (its stored offsets).

The consumer runs as a real `kubedelta consume` process; a reference view in this
process is advanced, by the same apply code, to each kill point's offsets (log
prefixes only grow, so one reference store serves every kill point) and the two
are compared with the store's digest. Each cluster topic has one partition, so
everything but the global change-feed positions is independent of how the
consumer interleaved the clusters; the change feed is compared as a multiset.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from consumer_support import (
    LogBuilder,
    create_topics,
    end_offsets,
    produce,
    unique_prefix,
)

from consumers import BatchApplier, ConsumerMetrics
from consumers.source import to_source_records
from deltas import topic_for
from store import StoreOptions, View, ViewReads
from store.layout import ALL_CFS, CF_CHANGES, CF_META
from store.reads import scan
from store.records import SourceRecord

pytestmark = pytest.mark.kafka

#: The consume command alone: the full CLI also imports the query and producer stacks.
CLI = [sys.executable, "-c", "from kubedelta.cmd_consume import consume; consume()"]
CLUSTERS = ("c0", "c1", "c2", "c3")
RECORDS = 200_000
OBJECTS = 4_000  #: per cluster
KILLS = 22

Partition = tuple[str, int]


def digests(view: ViewReads) -> dict[str, str]:
    """Per column family digests of everything but the change feed."""
    return {cf: view.view_digest([cf]) for cf in ALL_CFS if cf != CF_CHANGES}


def changes_after(view: ViewReads, position: int) -> Counter[tuple[object, ...]]:
    """The changes after ``position``, as a multiset (positions depend on interleaving)."""
    found: Counter[tuple[object, ...]] = Counter()
    while batch := view.changes_since(position, limit=10_000):
        found.update(
            (c.cluster, c.group, c.kind, c.namespace, c.name, int(c.op), c.resource_version)
            for c in batch
        )
        position = batch[-1].position
    return found


def meta_entries(view: ViewReads) -> dict[bytes, bytes]:
    """The meta CF (offsets, sessions, digests, cluster status), for failure messages."""
    return {k: v for k, v in scan(view._h.cfs[CF_META], b"") if not k.startswith(b"w")}


def assert_same(live: ViewReads, reference: ViewReads, compared_changes: int) -> int:
    """Assert the two views are equal; returns the feed position compared up to. Both
    feeds hold the same changes up to ``compared_changes`` (checked before), so only
    the changes after it are compared (equal multisets minus equal multisets)."""
    got, want = digests(live), digests(reference)
    differing = [cf for cf in want if got[cf] != want[cf]]
    detail = ""
    if CF_META in differing:
        lm, rm = meta_entries(live), meta_entries(reference)
        diff = {k: (lm.get(k), rm.get(k)) for k in set(lm) | set(rm) if lm.get(k) != rm.get(k)}
        detail = repr(diff)[:2000]
    assert not differing, f"column families differ: {differing} {detail}"
    bounds = live.feed_bounds()
    assert bounds == reference.feed_bounds()
    assert changes_after(live, compared_changes) == changes_after(reference, compared_changes)
    return bounds[1]


class Reference:
    """A view advanced from Kafka to given offsets, never rewinding."""

    def __init__(self, view: View, consumer: AIOKafkaConsumer, prefix: str) -> None:
        self.view = view
        self._consumer = consumer
        self._held: dict[Partition, list[SourceRecord]] = {}
        self._applier = BatchApplier(
            view,
            ConsumerMetrics(),
            topic_prefix=prefix,
            dead_letters=None,
            max_records=3_000,
            max_bytes=64 << 20,
        )

    async def advance_to(self, targets: dict[Partition, int]) -> None:
        stored = self.view.resume_offsets()
        while True:
            behind = {p for p, o in targets.items() if stored.get(p, 0) < o}
            if not behind:
                return
            records: list[SourceRecord] = []
            for p in behind:
                held = self._held.pop(p, [])
                if not held:
                    got = await self._consumer.getmany(TopicPartition(*p), timeout_ms=500)
                    held = to_source_records(got)
                keep = [r for r in held if r.offset < targets[p]]
                rest = held[len(keep) :]
                if rest:
                    self._held[p] = rest
                records.extend(keep)
            if records:
                await self._applier.apply(records)
            stored = self.view.resume_offsets()


async def start_consumer(data_dir: Path, bootstrap: str, prefix: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "KUBEDELTA_DEAD_LETTER_TOPIC": f"{prefix}-dlq"}
    return await asyncio.create_subprocess_exec(
        *CLI, "--data-dir", str(data_dir), "--bootstrap", bootstrap,
        "--topic-prefix", prefix, "--batch-max-records", "2000", "--metrics-port", "0",
        "--log-level", "WARNING",
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip


async def wait_for_line(process: asyncio.subprocess.Process, needle: str) -> str:
    assert process.stderr is not None
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        if not line:
            raise AssertionError(f"consumer exited before printing {needle!r}")
        if needle in line:
            return line


@pytest.mark.timeout(300)  # ~60 s on an idle 2-core box; the box is shared
async def test_kill_9_at_random_instants_never_leaves_a_view_that_differs_from_a_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rng = random.Random(20240501)
    prefix = unique_prefix()
    options = StoreOptions(topic_prefix=prefix)  # the CLI's defaults: history on
    topics = [topic_for(c, prefix) for c in CLUSTERS]
    await create_topics(kafka_bootstrap, topics, partitions=1)
    log = LogBuilder(prefix, 1)
    # OBJECTS objects per cluster, updated again and again, some deleted and recreated:
    # every kill point sees creates, updates (history) and deletes in flight, and the
    # views stay small enough to compare in full after every kill.
    records = []
    for i in range(RECORDS // len(CLUSTERS)):
        for c in CLUSTERS:
            if i % 13 == 12:
                records.append(log.delete(c, (i * 7) % OBJECTS))
            else:
                records.append(log.upsert(c, i % OBJECTS, version=i // OBJECTS + 1, pad=60))

    # The consumer tails a growing log, as in production. The log grows for ~30 s, about
    # as long as the kill points take: a consumer that caught up with it early would
    # leave the later kill points nothing in flight (seen once the consumer got faster).
    producing = asyncio.create_task(produce(kafka_bootstrap, records, chunks=50, pause_s=0.6))
    data_dir = tmp_path / "live"
    reference_consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, enable_auto_commit=False
    )
    await reference_consumer.start()
    tps = [TopicPartition(t, 0) for t in topics]
    reference_consumer.assign(tps)
    for tp in tps:
        reference_consumer.seek(tp, 0)
    progressed = 0
    compared = 0  # change-feed position both views were compared up to
    previous: dict[Partition, int] = {}
    try:
        with View.open(tmp_path / "reference", options) as ref_view:
            reference = Reference(ref_view, reference_consumer, prefix)
            for _ in range(KILLS):
                process = await start_consumer(data_dir, kafka_bootstrap, prefix)
                try:
                    await wait_for_line(process, "consume: replica mode")
                    await asyncio.sleep(rng.uniform(0.05, 1.2))
                finally:
                    process.send_signal(signal.SIGKILL)
                    assert await process.wait() == -signal.SIGKILL
                with View.open(data_dir, options) as live:
                    offsets = live.resume_offsets()
                    await reference.advance_to(offsets)
                    assert ref_view.resume_offsets() == offsets
                    compared = assert_same(live, ref_view, compared)
                progressed += offsets != previous
                previous = offsets

            # Then let it finish: the final view equals the reference advanced to the end
            # of the log, i.e. a full replay (in other batch sizes and interleaving).
            await producing
            ends = await end_offsets(kafka_bootstrap, topics)
            await reference.advance_to(ends)
            process = await start_consumer(data_dir, kafka_bootstrap, prefix)
            try:
                line = await wait_for_line(process, "metrics at ")
                url = line.split("metrics at ", 1)[1].strip().removesuffix("/metrics")
                # Ready = caught up with the end offsets seen at start = the whole log.
                await wait_ready(url, timeout_s=60)
            finally:
                process.send_signal(signal.SIGTERM)
                assert await asyncio.wait_for(process.wait(), 30) == 0
            with View.open(data_dir, options) as live:
                assert live.resume_offsets() == ends
                assert_same(live, ref_view, compared)
    finally:
        producing.cancel()
        await reference_consumer.stop()

    assert progressed >= KILLS // 2, f"only {progressed} kill points advanced the view"


async def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = await asyncio.to_thread(_status, url + "/readyz")
        except OSError:
            status = 0
        if status == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the consumer did not catch up")


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)

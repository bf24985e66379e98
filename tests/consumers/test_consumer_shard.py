"""Shard mode: a rebalance between two members loses nothing and applies nothing twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from consumer_support import (
    LogBuilder,
    Running,
    all_objects,
    config,
    create_topics,
    end_offsets,
    produce,
    store_options,
    unique_prefix,
)

from consumers import ConsumerMode, ReplayConfig, Replayer
from deltas import topic_for
from store import View
from store.records import SourceRecord

pytestmark = pytest.mark.kafka

Partition = tuple[str, int]


class ApplyLog:
    """Spy on one member: every offset it committed and every partition it forgot,
    in order, per partition."""

    def __init__(self) -> None:
        self.events: dict[Partition, list[int | None]] = {}  # None marks a forget

    def committed(self, records: Sequence[SourceRecord]) -> None:
        for r in records:
            self.events.setdefault((r.topic, r.partition), []).append(r.offset)

    def forgot(self, partitions: Iterable[Partition]) -> None:
        for p in partitions:
            self.events.setdefault(p, []).append(None)

    def periods(self, partition: Partition) -> list[list[int]]:
        """Offsets applied per ownership period (a forget ends a period)."""
        out: list[list[int]] = [[]]
        for e in self.events.get(partition, []):
            if e is None:
                out.append([])
            else:
                out[-1].append(e)
        return [p for p in out if p]


def spy_on_forget(running: Running, log: ApplyLog) -> None:
    real = running.view.forget_partitions

    def forget(topic_partitions: Iterable[Partition]) -> int:
        parts = list(topic_partitions)
        log.forgot(parts)
        return real(parts)

    running.view.forget_partitions = forget  # type: ignore[method-assign]


async def test_rebalance_between_two_shards_loses_nothing_and_applies_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = unique_prefix()
    clusters = ["alpha", "beta", "gamma"]
    topics = [topic_for(c, prefix) for c in clusters]
    await create_topics(kafka_bootstrap, topics, partitions=4)
    log = LogBuilder(prefix, 4)
    await produce(kafka_bootstrap, [log.upsert(c, i) for c in clusters for i in range(2_000)])
    group = f"kdtest-group-{uuid.uuid4().hex[:8]}"

    def cfg(name: str):  # type: ignore[no-untyped-def]
        return config(
            tmp_path / name,
            kafka_bootstrap,
            prefix,
            mode=ConsumerMode.SHARD,
            group=group,
            batch_max_records=500,
        )

    log_a, log_b = ApplyLog(), ApplyLog()
    a = Running(cfg("a"), observer=log_a.committed)
    b = Running(cfg("b"), observer=log_b.committed)
    spy_on_forget(a, log_a)
    spy_on_forget(b, log_b)
    async with a:
        await a.until_offsets(await end_offsets(kafka_bootstrap, topics))
        assert len(a.consumer.source.assigned) == 12
        # Records keep arriving (updates and deletes too) while b joins and the group
        # rebalances, so batches are in flight when a's partitions are revoked.
        second = [log.upsert(c, i, version=2) for c in clusters for i in range(0, 2_000, 2)]
        second += [log.delete(c, i) for c in clusters for i in range(0, 2_000, 5)]
        second += [log.upsert(c, i) for c in clusters for i in range(2_000, 2_500)]

        producing = asyncio.create_task(produce(kafka_bootstrap, second, chunks=12, pause_s=0.2))
        await asyncio.sleep(0.3)
        async with b:
            await producing
            ends = await end_offsets(kafka_bootstrap, topics)

            def settled() -> bool:
                owned_a = {(tp.topic, tp.partition) for tp in a.consumer.source.assigned}
                owned_b = {(tp.topic, tp.partition) for tp in b.consumer.source.assigned}
                if not owned_a or not owned_b or owned_a | owned_b != set(ends):
                    return False
                sa, sb = a.view.resume_offsets(), b.view.resume_offsets()
                return (
                    set(sa) == owned_a
                    and set(sb) == owned_b
                    and all(sa[p] == ends[p] for p in owned_a)
                    and all(sb[p] == ends[p] for p in owned_b)
                )

            await a.until(settled, timeout_s=60)

            owned_a = {(tp.topic, tp.partition) for tp in a.consumer.source.assigned}
            owned_b = {(tp.topic, tp.partition) for tp in b.consumer.source.assigned}
            objects_a, objects_b = all_objects(a.view), all_objects(b.view)
            # Stop both at once so neither takes over the other's partitions on the way out.
            a.stop.set()
            b.stop.set()
            await asyncio.gather(a.shutdown(), b.shutdown())

    assert owned_a.isdisjoint(owned_b)
    # Loses nothing: together the shards hold exactly what a full replay holds.
    replay_cfg = config(tmp_path / "replay", kafka_bootstrap, prefix)
    await Replayer(ReplayConfig(replay_cfg), store_options(prefix)).run()
    with View.open(tmp_path / "replay", store_options(prefix)) as replayed:
        expected = all_objects(replayed)
    assert objects_a.keys().isdisjoint(objects_b.keys())
    assert objects_a | objects_b == expected
    assert len(expected) == 3 * (2_500 - 400)

    # Applies nothing twice: within each period a member owned a partition, offsets were
    # applied once each, consecutively from where the view was; the last owner ends at
    # the end of the log.
    for member, owned in ((log_a, owned_a), (log_b, owned_b)):
        for p in ends:
            periods = member.periods(p)
            for period in periods:
                assert period == list(range(period[0], period[0] + len(period))), p
                assert period[0] == 0, p  # a new owner rebuilds the partition from its start
            if p in owned:
                assert periods and periods[-1][-1] == ends[p] - 1, p
    assert a.consumer.totals.skipped == 0 and b.consumer.totals.skipped == 0
    moved = [p for p in ends if log_a.periods(p) and p in owned_b]
    assert moved, "the rebalance moved no partition from a to b"

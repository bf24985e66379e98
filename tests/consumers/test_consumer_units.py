"""Pure parts of the consumer: batch splitting, readiness, lag, configuration checks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from consumers import ConsumerConfig, ConsumerConfigError, ConsumerMode
from consumers.apply import BatchApplier, chunks
from consumers.metrics import ConsumerMetrics
from consumers.progress import CatchUp, lag_by_cluster, wants_bulk
from plumbing.kafka import offsets_in_chunks
from store import StoreOptions, View
from store.records import SourceRecord


def rec(offset: int, size: int) -> SourceRecord:
    return SourceRecord("t", 0, offset, b"k", b"x" * size, 0)


def test_chunks_bound_records_and_bytes_and_keep_order() -> None:
    records = [rec(i, 10) for i in range(25)]
    assert [len(c) for c in chunks(records, 10, 1_000)] == [10, 10, 5]
    assert [len(c) for c in chunks(records, 100, 55)] == [5, 5, 5, 5, 5]
    assert [r.offset for c in chunks(records, 7, 33) for r in c] == list(range(25))
    big = [rec(0, 500), rec(1, 1), rec(2, 500)]
    assert [len(c) for c in chunks(big, 10, 100)] == [1, 1, 1]  # a large record goes alone
    assert list(chunks([], 10, 10)) == []


def test_catch_up_is_ready_once_every_start_offset_is_reached() -> None:
    catch_up = CatchUp()
    assert not catch_up.update({})  # no targets yet: not ready
    catch_up.set_targets({("a", 0): 10, ("a", 1): 0, ("b", 0): 5})
    catch_up.set_targets({("a", 0): 99})  # the first snapshot wins
    assert not catch_up.update({("a", 0): 10})
    assert catch_up.update({("a", 0): 10, ("b", 0): 5})  # empty partitions need nothing
    assert catch_up.update({})  # stays ready


def test_catch_up_forgets_partitions_handed_to_another_shard() -> None:
    catch_up = CatchUp()
    catch_up.set_targets({("a", 0): 10, ("a", 1): 10})
    catch_up.keep_only([("a", 0)])
    assert catch_up.update({("a", 0): 10})


def test_lag_sums_partitions_per_cluster() -> None:
    highwaters = {("p.c.a", 0): 10, ("p.c.a", 1): 7, ("p.c.b", 0): None, ("p.c.b", 1): 3}
    stored = {("p.c.a", 0): 4, ("p.c.a", 1): 9, ("p.c.b", 1): 1}
    assert lag_by_cluster(highwaters, stored, lambda t: t.rsplit(".", 1)[1]) == {"a": 6, "b": 2}


def _bulk(
    *,
    bulk: bool = False,
    became_ready: bool = False,
    ready: bool = True,
    remaining: int = 0,
    behind: int = 0,
) -> bool:
    return wants_bulk(
        bulk=bulk,
        became_ready=became_ready,
        ready=ready,
        remaining=remaining,
        behind=behind,
        catch_up_records=20_000,
        behind_records=100_000,
    )


def test_first_catch_up_runs_in_bulk_from_its_threshold_until_ready() -> None:
    assert not _bulk(ready=False, remaining=19_999)
    assert _bulk(ready=False, remaining=20_000)
    assert _bulk(ready=False, bulk=True, remaining=5)  # no way back before ready
    # readiness persists everything, however far behind the live log already is
    assert not _bulk(bulk=True, became_ready=True, behind=10**6)


def test_a_ready_consumer_goes_bulk_only_when_far_behind_with_hysteresis() -> None:
    assert not _bulk(behind=99_999)  # a burst stays logged, visible record by record
    assert _bulk(behind=100_000)
    assert _bulk(bulk=True, behind=10_000)  # stays bulk until within a tenth
    assert not _bulk(bulk=True, behind=9_999)
    never = wants_bulk(
        bulk=False,
        became_ready=False,
        ready=True,
        remaining=0,
        behind=10**9,
        catch_up_records=20_000,
        behind_records=0,
    )
    assert not never
    caught_up = wants_bulk(
        bulk=True,
        became_ready=False,
        ready=True,
        remaining=0,
        behind=0,
        catch_up_records=20_000,
        behind_records=5,  # a tenth rounds to 0: caught up must still end bulk
    )
    assert not caught_up


def test_config_rejects_what_cannot_work() -> None:
    with pytest.raises(ConsumerConfigError, match="group"):
        ConsumerConfig(Path("v"), mode=ConsumerMode.SHARD)
    with pytest.raises(ConsumerConfigError, match="batch_max_records"):
        ConsumerConfig(Path("v"), batch_max_records=0)
    with pytest.raises(ConsumerConfigError, match="getmany_timeout_ms"):
        ConsumerConfig(Path("v"), getmany_timeout_ms=-1)
    with pytest.raises(ConsumerConfigError, match="bulk_behind_records"):
        ConsumerConfig(Path("v"), bulk_behind_records=-1)
    assert ConsumerConfig(Path("v"), mode=ConsumerMode.SHARD, group_id="g").group_id == "g"


async def test_offsets_are_asked_in_chunks() -> None:
    asked: list[int] = []

    async def lookup(chunk: list[TopicPartition]) -> dict[TopicPartition, int]:
        asked.append(len(chunk))
        return {tp: tp.partition * 10 for tp in chunk}

    tps = [TopicPartition("t", p) for p in range(450)]
    found = await offsets_in_chunks(lookup, tps, chunk=200)
    assert asked == [200, 200, 50]
    assert found == {tp: tp.partition * 10 for tp in tps}
    assert await offsets_in_chunks(lookup, []) == {}


async def test_commit_delay_is_observed_once_per_commit_from_the_oldest_record(
    tmp_path: Path,
) -> None:
    """The freshness histogram: one observation per WriteBatch, measured from the
    oldest Kafka timestamp in it (records here are refused, which commits their offsets
    all the same: no dead-letter sink in this test)."""
    metrics = ConsumerMetrics()
    now_ms = int(time.time() * 1000)
    topic = "kubedelta.cluster.alpha"
    records = [
        SourceRecord(topic, 0, i, b"k", b"not a delta", now_ms - 2_000 + i) for i in range(5)
    ]
    with View.open(tmp_path / "store", StoreOptions()) as view:
        applier = BatchApplier(
            view,
            metrics,
            topic_prefix="kubedelta.cluster",
            dead_letters=None,
            max_records=3,
            max_bytes=1 << 20,
        )
        outcome = await applier.apply(records)
    assert outcome.commits == 2
    count = metrics.registry.get_sample_value("kubedelta_consumer_commit_delay_seconds_count")
    total = metrics.registry.get_sample_value("kubedelta_consumer_commit_delay_seconds_sum")
    assert count == 2
    assert total is not None and 2 * 1.99 <= total < 2 * 60  # ~2 s each, from records 0 and 3


async def test_a_live_view_commits_in_smaller_batches_than_a_bulk_catch_up(
    tmp_path: Path,
) -> None:
    """With the WAL on and the consumer caught up, a fetch is committed in
    ``live_max_records`` pieces so its first changes reach readers sooner; behind or in
    bulk, in ``max_records`` pieces."""
    topic = "kubedelta.cluster.alpha"
    with View.open(tmp_path / "store", StoreOptions()) as view:
        applier = BatchApplier(
            view,
            ConsumerMetrics(),
            topic_prefix="kubedelta.cluster",
            dead_letters=None,
            max_records=10,
            max_bytes=1 << 20,
            live_max_records=3,
        )

        def records(start: int) -> list[SourceRecord]:
            return [
                SourceRecord(topic, 0, i, b"k", b"not a delta", 0) for i in range(start, start + 10)
            ]

        assert (await applier.apply(records(0))).commits == 4
        applier.caught_up = False  # far behind: throughput first
        assert (await applier.apply(records(10))).commits == 1
        applier.caught_up = True
        view.begin_bulk()
        assert (await applier.apply(records(20))).commits == 1
        view.end_bulk()

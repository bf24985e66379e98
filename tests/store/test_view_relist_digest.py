"""Relist markers (sync state, sweeping what a full relist did not re-assert) and
DIGEST checks against the running per-partition digest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from view_feed import Feed

from deltas import Op, ResourceKey, RunningDigest, partition_for
from store import StoreOptions, View

OPTS = StoreOptions(history_retention_s=0)


@pytest.fixture
def view(tmp_path: Path) -> Iterator[View]:
    v = View.open(tmp_path / "store", OPTS)
    yield v
    v.close()


def pod_names(view: View, kind: str = "Pod") -> list[str]:
    return [i.name for i in view.list_objects(kind=kind).items]


def test_full_relist_deletes_what_was_not_reasserted(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply(
        [feed.upsert(n, "1") for n in ("a", "b", "c")] + [feed.upsert("svc", "1", kind="Service")]
    )
    status = view.cluster_status("prod-1")
    assert status is not None and status.sync_state == "unknown"

    view.apply(
        [
            feed.relist(Op.RELIST_START, 0, "r1"),
            feed.upsert("a", "1"),  # unchanged, re-asserted
            feed.upsert("c", "2"),  # changed
        ]
    )
    status = view.cluster_status("prod-1")
    assert status is not None and status.sync_state == "syncing"
    assert status.partitions[0].open_relists == 1
    assert pod_names(view) == ["a", "b", "c"]  # nothing is deleted before the end marker

    result = view.apply([feed.upsert("d", "1"), feed.relist(Op.RELIST_END, 0, "r1")])
    assert pod_names(view) == ["a", "c", "d"]
    assert pod_names(view, "Service") == ["svc"]  # another kind is not swept
    assert result.changes == 2  # d created, b swept
    deleted = [c for c in view.changes_since(0) if c.op is Op.DELETE]
    assert [(c.name, c.kind) for c in deleted] == [("b", "Pod")]
    status = view.cluster_status("prod-1")
    assert status is not None and status.sync_state == "synced"
    assert status.counts_by_kind == {("", "Pod"): 3, ("", "Service"): 1}


def test_full_relist_in_one_batch_sweeps_objects_created_earlier_in_the_batch(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply(
        [
            feed.upsert("old", "1"),
            feed.relist(Op.RELIST_START, 0, "r1"),
            feed.upsert("new", "1"),
            feed.relist(Op.RELIST_END, 0, "r1"),
        ]
    )
    assert pod_names(view) == ["new"]


def test_sweep_is_limited_to_the_partition_of_the_markers(view: View) -> None:
    feed = Feed("prod-1", partitions=2)
    names = [f"p{i}" for i in range(12)]
    view.apply([feed.upsert(n, "1") for n in names])
    on_0 = [n for n in names if feed.partition_of(n) == 0]
    on_1 = [n for n in names if feed.partition_of(n) == 1]
    assert on_0 and on_1
    # partition 0 relists and re-asserts only its first object
    view.apply(
        [
            feed.relist(Op.RELIST_START, 0, "r1"),
            feed.upsert(on_0[0], "1"),
            feed.relist(Op.RELIST_END, 0, "r1"),
        ]
    )
    assert pod_names(view) == sorted([on_0[0], *on_1])


def test_incremental_relist_only_sets_the_sync_state(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1")])
    view.apply(
        [
            feed.relist(Op.RELIST_START, 0, "r1", full=False),
            feed.upsert("a", "2"),
            feed.relist(Op.RELIST_END, 0, "r1", full=False),
        ]
    )
    assert pod_names(view) == ["a", "b"]
    status = view.cluster_status("prod-1")
    assert status is not None and status.sync_state == "synced"


def test_an_end_marker_of_a_superseded_relist_sweeps_nothing(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1")])
    result = view.apply(
        [
            feed.relist(Op.RELIST_START, 0, "r1"),
            feed.relist(Op.RELIST_START, 0, "r2"),  # producer restarted: a new relist
            feed.upsert("a", "1"),
            feed.relist(Op.RELIST_END, 0, "r1"),  # stale end
        ]
    )
    assert pod_names(view) == ["a", "b"]
    assert result.unchanged == 2  # the re-asserted a, the stale end
    status = view.cluster_status("prod-1")
    assert status is not None and status.sync_state == "syncing"
    view.apply([feed.relist(Op.RELIST_END, 0, "r2")])
    assert pod_names(view) == ["a"]


def producer_digest(objects: dict[str, str], partition: int, partitions: int) -> RunningDigest:
    """What the producer would send: its own running digest of the objects on ``partition``."""
    d = RunningDigest()
    for name, rv in objects.items():
        key = ResourceKey("", "v1", "Pod", "default", name).identity_bytes()
        if partition_for(key, partitions) == partition:
            d.add(key, rv)
    return d


def test_digest_matches_when_the_view_holds_what_the_producer_holds(view: View) -> None:
    feed = Feed("prod-1", partitions=2)
    live = {f"p{i}": "1" for i in range(10)}
    records = [feed.upsert(n, rv) for n, rv in live.items()]
    records.append(feed.upsert("p3", "2"))
    live["p3"] = "2"
    records.append(feed.delete("p4"))
    del live["p4"]
    digests = [producer_digest(live, p, 2) for p in (0, 1)]
    records += [feed.digest(p, d.count, d.hash) for p, d in enumerate(digests)]
    # more changes after the digest in the same batch must not affect its verdict
    records.append(feed.upsert("p5", "9"))
    result = view.apply(records)
    assert [v.matches for v in result.digest_verdicts] == [True, True]
    assert [v.actual_count for v in result.digest_verdicts] == [d.count for d in digests]
    status = view.cluster_status("prod-1")
    assert status is not None
    assert (status.digest_checks, status.digest_mismatches) == (2, 0)
    assert status.last_verdict == result.digest_verdicts[-1]


def test_digest_mismatch_is_reported_and_counted(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1")])
    expected = producer_digest({"a": "1", "b": "2"}, 0, 1)  # the producer has b at rv 2
    result = view.apply([feed.digest(0, expected.count, expected.hash)])
    (verdict,) = result.digest_verdicts
    assert not verdict.matches
    assert verdict.expected_count == verdict.actual_count == 2
    assert verdict.expected_hash != verdict.actual_hash
    status = view.cluster_status("prod-1")
    assert status is not None and status.digest_mismatches == 1
    assert status.last_verdict is not None and not status.last_verdict.matches


def test_digest_for_another_partition_is_rejected(view: View) -> None:
    feed = Feed("prod-1", partitions=2)
    rec = feed.digest(1, 0, 0)
    moved = type(rec)(rec.topic, 0, 0, rec.key, rec.value, rec.timestamp_ms)
    plan = view.plan([moved])
    assert "describes partition 1 but arrived on partition 0" in plan.rejected[0].reason

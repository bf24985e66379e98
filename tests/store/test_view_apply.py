"""Applying records: objects, indexes, idempotence, validation. Real RocksDB in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import msgpack
import pytest
from view_feed import Feed, body_of

from deltas import BodyEncoding
from store import (
    Item,
    SourceRecord,
    StalePlanError,
    StoreLockedError,
    StoreOptions,
    View,
)
from store import layout as L
from store.reads import scan

OPTS = StoreOptions(history_retention_s=0)


@pytest.fixture
def view(tmp_path: Path) -> Iterator[View]:
    v = View.open(tmp_path / "store", OPTS)
    yield v
    v.close()


def index_keys(view: View, cf: str) -> list[bytes]:
    return [k for k, _ in scan(view._h.cfs[cf], b"")]


def names(page_items: Sequence[Item]) -> list[str]:
    return [i.name for i in page_items]


def test_upsert_then_get_returns_the_body_bytes_unchanged(view: View) -> None:
    feed = Feed("prod-1")
    rec = feed.upsert("web-1", "10", labels={"app": "web"})
    result = view.apply([rec])
    assert (result.applied, result.changes, result.rejected) == (1, 1, 0)
    assert rec.value is not None
    body = view.get("prod-1", "", "Pod", "default", "web-1")
    assert body is not None and rec.value.endswith(body)  # the exact bytes that arrived
    entry = view.get_entry("prod-1", "", "Pod", "default", "web-1")
    assert entry is not None
    assert (entry.uid, entry.resource_version, entry.version) == ("uid-web-1", "10", "v1")
    assert entry.labels == {"app": "web"}
    assert (entry.partition, entry.offset) == (rec.partition, rec.offset)
    assert view.get("prod-1", "", "Pod", "default", "absent") is None


def test_update_delete_and_tombstone(view: View) -> None:
    feed = Feed("prod-1")
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1"), feed.upsert("a", "2", extra="x")])
    assert body_of(view.get("prod-1", "", "Pod", "default", "a"))["spec"] == {"extra": "x"}
    result = view.apply([feed.delete("a"), feed.tombstone("b"), feed.delete("never-existed")])
    assert (result.applied, result.changes, result.unchanged) == (3, 2, 1)
    assert view.list_objects().items == []
    assert view.count() == 0
    status = view.cluster_status("prod-1")
    assert status is not None and status.object_count == 0
    assert all(p.object_count == 0 and p.digest_hash == 0 for p in status.partitions)


def test_several_records_for_one_key_in_one_batch_chain(view: View) -> None:
    feed = Feed("prod-1")
    result = view.apply(
        [
            feed.upsert("a", "1", labels={"v": "1"}),
            feed.upsert("a", "2", labels={"v": "2"}),
            feed.delete("a"),
            feed.upsert("a", "3", labels={"v": "3"}),
        ]
    )
    assert result.changes == 4
    entry = view.get_entry("prod-1", "", "Pod", "default", "a")
    assert entry is not None and entry.resource_version == "3"
    assert index_keys(view, L.CF_IDX_LABEL) == [
        b"v\x003\x00" + L.object_key("prod-1", "", "Pod", "default", "a")
    ]
    assert view.count() == 1


def test_indexes_follow_label_owner_and_app_changes(view: View) -> None:
    feed = Feed("prod-1")
    view.apply(
        [
            feed.upsert(
                "p1", "1", labels={"app": "web", "tier": "fe"}, owners=("rs-1",), app="shop"
            ),
            feed.upsert("p2", "1", labels={"app": "web"}, owners=("rs-1",), app="shop"),
        ]
    )
    assert names(view.by_label("app", "web").items) == ["p1", "p2"]
    assert names(view.by_label("tier").items) == ["p1"]
    assert names(view.by_owner("prod-1", "rs-1").items) == ["p1", "p2"]
    assert names(view.by_app("shop").items) == ["p1", "p2"]

    view.apply([feed.upsert("p1", "2", labels={"app": "api"}, owners=("rs-2",), app="other")])
    assert names(view.by_label("app", "web").items) == ["p2"]
    assert names(view.by_label("app", "api").items) == ["p1"]
    assert names(view.by_label("tier").items) == []
    assert names(view.by_owner("prod-1", "rs-1").items) == ["p2"]
    assert names(view.by_owner("prod-1", "rs-2").items) == ["p1"]
    assert names(view.by_app("shop").items) == ["p2"]

    view.apply([feed.delete("p1"), feed.delete("p2")])
    for cf in (L.CF_IDX_LABEL, L.CF_IDX_OWNER, L.CF_IDX_APP):
        assert index_keys(view, cf) == [], cf


def test_index_strings_with_nul_are_escaped_not_confused(view: View) -> None:
    feed = Feed("prod-1")
    view.apply(
        [
            feed.upsert("p1", "1", labels={"a\x00b": "c"}, app="x\x00y"),
            feed.upsert("p2", "1", labels={"a": "b\x00c"}),
        ]
    )
    assert names(view.by_label("a\x00b", "c").items) == ["p1"]
    assert names(view.by_label("a", "b\x00c").items) == ["p2"]
    assert names(view.by_label("a").items) == ["p2"]
    assert names(view.by_app("x\x00y").items) == ["p1"]
    view.apply([feed.upsert("p1", "2", labels={}), feed.delete("p2")])
    assert index_keys(view, L.CF_IDX_LABEL) == []
    assert index_keys(view, L.CF_IDX_APP) == []


def test_same_uid_and_rv_is_a_no_op(view: View) -> None:
    feed = Feed("prod-1")
    view.apply([feed.upsert("a", "1")])
    data_cfs = (L.CF_VERSIONS, L.CF_OBJMETA, L.CF_IDX_LABEL, L.CF_CHANGES)
    before = view.view_digest(data_cfs)
    result = view.apply([feed.upsert("a", "1", extra="noise the producer should not send")])
    assert (result.applied, result.unchanged, result.changes) == (1, 1, 0)
    # only the offset and session metadata moved; the object is untouched
    assert body_of(view.get("prod-1", "", "Pod", "default", "a"))["spec"] == {"extra": ""}
    assert view.view_digest(data_cfs) == before


def test_applying_the_same_batch_twice_changes_nothing(tmp_path: Path) -> None:
    feed = Feed("prod-1")
    batch = [feed.upsert(f"p{i}", "1", labels={"i": str(i)}) for i in range(20)]
    batch += [feed.upsert("p3", "2"), feed.delete("p4")]
    with View.open(tmp_path / "once", OPTS) as once, View.open(tmp_path / "twice", OPTS) as twice:
        once.apply(batch)
        twice.apply(batch)
        result = twice.apply(batch)
        assert (result.skipped, result.applied, result.changes) == (len(batch), 0, 0)
        assert once.view_digest() == twice.view_digest()


def test_replay_below_the_stored_offset_is_skipped(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    first = [feed.upsert("a", "1"), feed.upsert("b", "1")]
    view.apply(first)
    second = [feed.upsert("a", "2"), feed.upsert("c", "1")]
    result = view.apply([*first, *second])  # a rebalance re-delivers the old records too
    assert (result.skipped, result.applied, result.changes) == (2, 2, 2)
    assert view.resume_offsets() == {(feed.topic, 0): 4}


def test_offsets_cover_every_partition_including_rejected_records(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    result = view.apply([feed.upsert("a", "1"), feed.raw(0, b"not a delta")])
    assert result.rejected == 1
    assert view.resume_offsets() == {(feed.topic, 0): 2}
    # reopening reads the same offsets back from the store
    path = Path(view._h.db.path())
    view.close()
    with View.open(path, OPTS) as again:
        assert again.resume_offsets() == {(feed.topic, 0): 2}


def test_garbage_is_rejected_with_a_reason_and_the_rest_applied(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    good1 = feed.upsert("a", "1")
    bad = feed.raw(0, b"KD\x01\x00\x00\x00\x64trunc")  # says 100 header bytes
    good2 = feed.upsert("b", "1")
    plan = view.plan([good1, bad, good2])
    assert [r.record for r in plan.rejected] == [bad]
    assert "truncated" in plan.rejected[0].reason
    result = view.commit(plan)
    assert (result.applied, result.rejected) == (2, 1)
    assert names(view.list_objects().items) == ["a", "b"]


def test_cluster_id_mismatch_and_foreign_topics_are_rejected(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    liar = feed.upsert("a", "1", cluster="prod-2")
    foreign = SourceRecord("some.other.topic", 0, 0, b"k", feed.upsert("b", "1").value, 0)
    plan = view.plan([liar, foreign])
    reasons = [r.reason for r in plan.rejected]
    assert "does not match the topic's cluster 'prod-1'" in reasons[0]
    assert "not a cluster topic" in reasons[1]
    view.commit(plan)
    assert view.count() == 0
    assert view.resume_offsets()[("some.other.topic", 0)] == 1


def test_kafka_key_must_match_the_identity(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    rec = feed.upsert("a", "1")
    forged = SourceRecord(
        rec.topic, rec.partition, rec.offset, b"\x00Pod\x00default\x00b", rec.value, 0
    )
    plan = view.plan([forged])
    assert "does not match the record's identity" in plan.rejected[0].reason


def test_sequence_going_backwards_is_rejected_and_a_new_session_resets(view: View) -> None:
    feed = Feed("prod-1", partitions=1)
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1")])  # seq 1, 2
    feed.seq = 1  # the producer re-sends seq 2 in the same session
    replayed = feed.upsert("c", "1")
    plan = view.plan([replayed])
    assert "sequence went backwards: seq 2 <= last seq 2" in plan.rejected[0].reason
    view.commit(plan)
    restarted = Feed("prod-1", partitions=1, session="session-2")
    restarted.next_offset = feed.next_offset
    result = view.apply([restarted.upsert("c", "1")])  # seq 1 of a new session is fine
    assert (result.applied, result.rejected) == (1, 0)
    status = view.cluster_status("prod-1")
    assert status is not None
    assert (status.partitions[0].session, status.partitions[0].last_seq) == ("session-2", 1)


def test_msgpack_bodies_are_stored_as_json(view: View) -> None:
    feed = Feed("prod-1")
    view.apply([feed.upsert("a", "1", labels={"x": "y"}, encoding=BodyEncoding.MSGPACK)])
    body = body_of(view.get("prod-1", "", "Pod", "default", "a"))
    assert body["metadata"] == {
        "name": "a",
        "namespace": "default",
        "uid": "uid-a",
        "resourceVersion": "1",
        "labels": {"x": "y"},
    }


def test_corrupt_msgpack_body_is_rejected(view: View) -> None:
    from deltas import Delta, Op, ResourceKey, encode

    feed = Feed("prod-1", partitions=1)
    delta = Delta(
        op=Op.UPSERT,
        cluster="prod-1",
        key=ResourceKey("", "v1", "Pod", "default", "a"),
        uid="u",
        resource_version="1",
        body_encoding=BodyEncoding.MSGPACK,
        body=b"\xc1",  # never valid msgpack
    )
    plan = view.plan([feed.raw(0, encode(delta), key=None)])
    assert "MSGPACK body cannot be converted" in plan.rejected[0].reason


def test_a_plan_must_be_committed_before_the_next_one(view: View) -> None:
    feed = Feed("prod-1")
    first = view.plan([feed.upsert("a", "1")])
    second = view.plan([feed.upsert("b", "1")])
    view.commit(first)
    with pytest.raises(StalePlanError):
        view.commit(second)


def test_a_second_writer_gets_a_clear_lock_error(view: View) -> None:
    with pytest.raises(StoreLockedError, match="open by another writer"):
        View.open(Path(view._h.db.path()), OPTS)
    assert StoreLockedError.retriable


def test_forget_partitions_removes_their_objects_and_offsets_atomically(view: View) -> None:
    feed = Feed("prod-1", partitions=2)
    recs = [feed.upsert(f"p{i}", "1", labels={"app": "web"}, app="shop") for i in range(20)]
    view.apply(recs)
    on_0 = sorted(r.key for r in recs if r.partition == 0)  # type: ignore[type-var]
    removed = view.forget_partitions([(feed.topic, 1)])
    assert removed == len(recs) - len(on_0)
    left = view.list_objects().items
    assert (
        sorted(
            L.object_key(i.cluster, i.group, i.kind, i.namespace, i.name)[len("prod-1") + 1 :]
            for i in left
        )
        == on_0
    )
    assert len(view.by_label("app", "web").items) == len(on_0)
    assert len(view.by_app("shop").items) == len(on_0)
    assert view.resume_offsets() == {(feed.topic, 0): len(on_0)}
    assert view.count() == len(on_0)
    status = view.cluster_status("prod-1")
    assert status is not None and [p.partition for p in status.partitions] == [0]


def test_drop_cluster_removes_everything_of_it(view: View) -> None:
    a, b = Feed("prod-a"), Feed("prod-b")
    view.apply(
        [
            a.upsert("x", "1", labels={"k": "v"}, owners=("o",), app="s"),
            b.upsert("y", "1", labels={"k": "v"}),
        ]
    )
    view.drop_cluster("prod-a")
    assert view.clusters() == ["prod-b"]
    assert names(view.by_label("k").items) == ["y"]
    assert view.by_owner("prod-a", "o").items == []
    assert all(tp[0] == b.topic for tp in view.resume_offsets())
    assert view.cluster_status("prod-a") is None
    counts = {k: msgpack.unpackb(v) for k, v in scan(view._h.cfs[L.CF_META], L.TAG_KIND)}
    assert all(b"prod-a" not in k for k in counts)


def test_applications_lists_each_app_once_per_cluster_filter(view: View) -> None:
    a, b = Feed("prod-a"), Feed("prod-b")
    view.apply(
        [
            a.upsert("x1", "1", app="shop"),
            a.upsert("x2", "1", app="shop"),
            a.upsert("x3", "1", app="odd\x00\x01name"),
            b.upsert("y1", "1", app="blog"),
            b.upsert("y2", "1"),
        ]
    )
    assert view.applications() == sorted(
        ["blog", "odd\x00\x01name", "shop"], key=lambda s: L.esc(s)
    )
    assert view.applications(["prod-b"]) == ["blog"]
    assert view.applications(["nowhere"]) == []


def test_each_version_is_stored_once_and_replaced_ones_go_without_history(view: View) -> None:
    # history_retention_s=0: the versions CF holds exactly the current version of each
    # live object, whatever was replaced or deleted before, and the current body is read
    # through its objmeta.
    feed = Feed("prod-1")
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1"), feed.upsert("c", "1")])
    view.apply([feed.upsert("a", "2", extra="x"), feed.delete("b"), feed.upsert("a", "3")])
    stored = [L.objkey_of_history(k) for k in index_keys(view, L.CF_VERSIONS)]
    assert [L.split_object_key(k)[4] for k in stored] == ["a", "c"]
    for key, meta in scan(view._h.cfs[L.CF_OBJMETA], b""):
        assert view._h.cfs[L.CF_VERSIONS].get(L.version_key(key, meta)) is not None
    entry = view.get_entry("prod-1", "", "Pod", "default", "a")
    assert entry is not None and entry.resource_version == "3"
    assert view.get("prod-1", "", "Pod", "default", "b") is None
    assert list(scan(view._h.cfs[L.CF_HISTORY_EXPIRY], b"")) == []


def test_a_store_of_the_old_layout_is_refused_with_a_rebuild_hint(tmp_path: Path) -> None:
    from rocksdict import Options, Rdict

    from store import StoreError

    path = tmp_path / "old"
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    db = Rdict(str(path), opts)
    db.create_column_family("objects", opts)
    db.close()
    with pytest.raises(StoreError, match=r"layout version 1.*kubedelta replay"):
        View.open(path, OPTS)

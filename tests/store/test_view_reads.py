"""The read API: LIST pagination, counts, change feed, point-in-time, secondaries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from view_feed import Feed, body_of

from deltas import Op
from store import Item, StoreOptions, View, ViewReader
from store import layout as L
from store.reads import CONTENT_CFS

OPTS = StoreOptions(history_retention_s=0)


@pytest.fixture
def view(tmp_path: Path) -> Iterator[View]:
    v = View.open(tmp_path / "store", OPTS)
    yield v
    v.close()


def fill(view: View) -> set[tuple[str, str, str, str, str]]:
    """Three clusters, two kinds in two groups, a few namespaces; returns the identities."""
    everything = set()
    for cluster in ("alpha", "beta", "gamma"):
        feed = Feed(cluster)
        recs = []
        for i in range(40):
            ns = f"ns-{i % 3}"
            recs.append(feed.upsert(f"pod-{i:02d}", "1", ns=ns))
            everything.add((cluster, "", "Pod", ns, f"pod-{i:02d}"))
            if i % 4 == 0:
                recs.append(
                    feed.upsert(f"dep-{i:02d}", "1", ns=ns, kind="Deployment", group="apps")
                )
                everything.add((cluster, "apps", "Deployment", ns, f"dep-{i:02d}"))
        recs.append(feed.upsert("node-1", "1", ns="", kind="Node"))
        everything.add((cluster, "", "Node", "", "node-1"))
        view.apply(recs)
    return everything


def ident(item: Item) -> tuple[str, str, str, str, str]:
    return (item.cluster, item.group, item.kind, item.namespace, item.name)


def all_pages(view: View, limit: int, **query: object) -> list[tuple[str, str, str, str, str]]:
    seen: list[tuple[str, str, str, str, str]] = []
    cursor = None
    while True:
        page = view.list_objects(after=cursor, limit=limit, **query)  # type: ignore[arg-type]
        seen += [ident(i) for i in page.items]
        assert len(page.items) <= limit
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


@pytest.mark.parametrize("limit", [1, 7, 500])
def test_pagination_returns_every_object_exactly_once_in_key_order(view: View, limit: int) -> None:
    everything = fill(view)
    seen = all_pages(view, limit)
    assert len(seen) == len(set(seen)) == len(everything)
    assert set(seen) == everything
    assert seen == sorted(seen, key=lambda t: "\x00".join(t).encode())


@pytest.mark.parametrize(
    "query",
    [
        {"clusters": ["beta"]},
        {"clusters": ["gamma", "alpha"], "kind": "Pod"},
        {"kind": "Deployment"},  # group omitted: found through the per-kind counts
        {"group": "apps"},
        {"namespace": "ns-1"},
        {"kind": "Pod", "namespace": "ns-2", "name_prefix": "pod-1"},
        {"name_prefix": "dep-0"},
        {"clusters": ["alpha"], "group": "", "kind": "Node"},
    ],
)
def test_filtered_lists_match_a_filter_over_everything(
    view: View, query: dict[str, object]
) -> None:
    everything = fill(view)

    def wanted(t: tuple[str, str, str, str, str]) -> bool:
        c, g, k, ns, n = t
        return (
            ("clusters" not in query or c in query["clusters"])  # type: ignore[operator]
            and ("group" not in query or g == query["group"])
            and ("kind" not in query or k == query["kind"])
            and ("namespace" not in query or ns == query["namespace"])
            and n.startswith(str(query.get("name_prefix", "")))
        )

    expected = {t for t in everything if wanted(t)}
    assert expected
    seen = all_pages(view, 5, **query)
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    count_query = {k: v for k, v in query.items() if k != "name_prefix"}
    if "name_prefix" not in query:
        assert view.count(**count_query) == len(expected)  # type: ignore[arg-type]


def test_pagination_is_stable_while_objects_are_added_and_deleted(view: View) -> None:
    feed = Feed("alpha")
    view.apply([feed.upsert(f"p{i:03d}", "1") for i in range(0, 100, 2)])
    first = view.list_objects(limit=10)
    view.apply([feed.upsert("p001", "1"), feed.delete("p050"), feed.upsert("p099", "1")])
    seen = [i.name for i in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        page = view.list_objects(after=cursor, limit=10)
        seen += [i.name for i in page.items]
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert (
        "p099" in seen and "p050" not in seen and "p001" not in seen
    )  # p001 sorts before the cursor


def test_index_lookups_page_too(view: View) -> None:
    feed = Feed("alpha")
    view.apply(
        [feed.upsert(f"p{i:02d}", "1", labels={"app": "web"}, app="shop") for i in range(25)]
    )
    names: list[str] = []
    cursor = None
    while True:
        page = view.by_label("app", "web", after=cursor, limit=10)
        names += [i.name for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert names == [f"p{i:02d}" for i in range(25)]
    assert len(view.by_app("shop", clusters=["alpha"], kind="Pod").items) == 25
    assert view.by_app("shop", clusters=["beta"]).items == []


def test_change_feed_positions_are_monotonic_and_resumable(view: View) -> None:
    feed = Feed("alpha")
    view.apply([feed.upsert("a", "1"), feed.upsert("b", "1")])
    view.apply([feed.upsert("a", "2"), feed.upsert("a", "2"), feed.delete("b")])  # one no-op
    view.apply([feed.upsert("c", "1")])
    changes = view.changes_since(0)
    assert [c.position for c in changes] == [1, 2, 3, 4, 5]
    assert [(c.name, c.op, c.resource_version) for c in changes] == [
        ("a", Op.UPSERT, "1"),
        ("b", Op.UPSERT, "1"),
        ("a", Op.UPSERT, "2"),
        ("b", Op.DELETE, ""),
        ("c", Op.UPSERT, "1"),
    ]
    # resume from any position, in any page size
    for start in range(6):
        got: list[int] = []
        pos = start
        while batch := view.changes_since(pos, limit=2):
            got += [c.position for c in batch]
            pos = batch[-1].position
        assert got == list(range(start + 1, 6))
    assert view.feed_bounds() == (1, 5)


def test_change_feed_retention_drops_whole_old_commits(tmp_path: Path) -> None:
    with View.open(
        tmp_path / "s", StoreOptions(history_retention_s=0, changes_retention=10)
    ) as view:
        feed = Feed("alpha")
        for i in range(30):
            view.apply([feed.upsert(f"p{i}", "1"), feed.upsert(f"q{i}", "1")])
        first, last = view.feed_bounds()
        assert last == 60
        assert 10 <= last - first + 1 <= 12  # retention plus at most the 10 % slack
        positions = [c.position for c in view.changes_since(0, limit=100)]
        assert positions == list(range(first, 61))


def test_get_at_returns_the_version_current_at_that_time(tmp_path: Path) -> None:
    now_ms = 1_800_000_000_000
    opts = StoreOptions(history_retention_s=3600)
    with View.open(tmp_path / "s", opts, clock=lambda: now_ms / 1000) as view:
        feed = Feed("alpha", start_ms=now_ms - 100_000)
        t = now_ms - 50_000
        view.apply([feed.upsert("a", "1", event_ms=t, extra="v1")])
        view.apply([feed.upsert("a", "2", event_ms=t + 1000, extra="v2")])
        view.apply(
            [
                feed.upsert("a", "3", event_ms=t + 2000, extra="v3"),
                feed.delete("a", event_ms=t + 3000),
            ]
        )
        view.apply([feed.upsert("a", "4", event_ms=t + 4000, extra="v4")])

        def at(ms: int) -> str | None:
            obj = view.get_at("alpha", "", "Pod", "default", "a", ms)
            return None if obj is None else obj.resource_version

        assert at(t - 1) is None  # before it existed
        assert [at(t), at(t + 999), at(t + 1000), at(t + 2500)] == ["1", "1", "2", "3"]
        assert at(t + 3000) is None and at(t + 3999) is None  # deleted then
        assert at(t + 4000) == "4" and at(now_ms) == "4"
        past = view.get_at("alpha", "", "Pod", "default", "a", t + 1500)
        assert past is not None and past.superseded_ms == t + 2000
        assert body_of(past.body)["spec"] == {"extra": "v2"}

        # list_at over two objects
        view.apply([feed.upsert("b", "1", event_ms=t + 5000)])
        assert [i.name for i in view.list_at("alpha", "", "Pod", t + 1500).items] == ["a"]
        assert [i.name for i in view.list_at("alpha", "", "Pod", t + 3500).items] == []
        page = view.list_at("alpha", "", "Pod", t + 6000, limit=1)
        assert [i.name for i in page.items] == ["a"]
        rest = view.list_at("alpha", "", "Pod", t + 6000, after=page.next_cursor)
        assert [i.name for i in rest.items] == ["b"]


def test_history_older_than_retention_is_pruned(tmp_path: Path) -> None:
    clock = [1_800_000_000.0]
    opts = StoreOptions(history_retention_s=60)
    with View.open(tmp_path / "s", opts, clock=lambda: clock[0]) as view:
        t = int(clock[0] * 1000)
        feed = Feed("alpha")
        view.apply([feed.upsert("a", "1", event_ms=t - 10_000)])
        view.apply([feed.upsert("a", "2", event_ms=t - 5_000)])
        assert view.get_at("alpha", "", "Pod", "default", "a", t - 8_000) is not None
        clock[0] += 120  # two minutes later the replaced version is past retention
        view.apply([feed.upsert("b", "1", event_ms=t + 1)])
        assert view.get_at("alpha", "", "Pod", "default", "a", t - 8_000) is None
        assert view.get_at("alpha", "", "Pod", "default", "a", t) is not None  # current stays
        from store import layout as L
        from store.reads import scan

        # left: the current versions only (history is written forward), nothing to expire
        kept = [L.objkey_of_history(k) for k, _ in scan(view._h.cfs[L.CF_VERSIONS], b"")]
        assert [L.split_object_key(k)[4] for k in kept] == ["a", "b"]
        assert list(scan(view._h.cfs[L.CF_HISTORY_EXPIRY], b"")) == []


def test_secondary_reader_in_another_process_sees_commits_after_catch_up(
    view: View, tmp_path: Path
) -> None:
    feed = Feed("alpha")
    view.apply([feed.upsert("a", "1")])
    store_path = Path(view._h.db.path())
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from store import StoreOptions, ViewReader
        reader = ViewReader.open(Path({str(store_path)!r}), Path({str(tmp_path / "sec")!r}),
                                 StoreOptions(history_retention_s=0))
        for line in sys.stdin:
            reader.catch_up()
            print(",".join(i.name for i in reader.list_objects().items), flush=True)
        reader.close()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write("read\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "a"
        view.apply([feed.upsert("b", "1"), feed.delete("a")])
        proc.stdin.write("read\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "b"
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0


def test_secondary_reader_in_process_has_the_whole_read_api(view: View, tmp_path: Path) -> None:
    feed = Feed("alpha")
    view.apply([feed.upsert("a", "1", labels={"app": "web"})])
    with ViewReader.open(Path(view._h.db.path()), tmp_path / "sec", OPTS) as reader:
        assert reader.get("alpha", "", "Pod", "default", "b") is None
        view.apply([feed.upsert("b", "1", labels={"app": "web"})])
        assert reader.get("alpha", "", "Pod", "default", "b") is None  # not caught up yet
        reader.catch_up()
        assert reader.get("alpha", "", "Pod", "default", "b") is not None
        assert [i.name for i in reader.by_label("app", "web").items] == ["a", "b"]
        assert [c.name for c in reader.changes_since(0)] == ["a", "b"]
        status = reader.cluster_status("alpha")
        assert status is not None and status.object_count == 2
        assert reader.view_digest() == view.view_digest()


def test_a_reader_follows_the_writer_through_bulk_mode_and_reopens(tmp_path: Path) -> None:
    # Small memtables: bulk (unlogged) writes get flushed several times per round. A
    # secondary that followed across the writer's reopen was seen stuck at an old state;
    # the reader reopens itself when the writer's MANIFEST changes.
    opts = StoreOptions(
        history_retention_s=0, write_buffer_bytes=1 << 20, total_write_buffer_bytes=2 << 20
    )
    feed = Feed("alpha")
    with View.open(tmp_path / "s", opts) as writer:
        writer.apply([feed.upsert(f"a{i}", "1") for i in range(50)])
        with ViewReader.open(tmp_path / "s", tmp_path / "secondary", opts) as reader:
            seen = [reader.count()]
            for rnd in range(4):
                writer.apply([feed.upsert(f"logged-{rnd}-{i}", "1") for i in range(30)])
                reader.catch_up()
                writer.begin_bulk()
                for b in range(6 + 3 * rnd):
                    writer.apply(
                        [feed.upsert(f"r{rnd}b{b}i{i}", "1", extra="x" * 1500) for i in range(300)]
                    )
                    reader.catch_up()
                    seen.append(reader.count())
                writer.end_bulk()
                reader.catch_up()
                assert reader.count() == writer.count()
                assert reader.view_digest(CONTENT_CFS) == writer.view_digest(CONTENT_CFS)
                seen.append(reader.count())
            assert seen == sorted(seen)  # never went back in time
            assert reader.reopens >= 4


class _CatchUpBetweenReads:
    """The ``versions`` column family of a reader, seen through a hook: the first lookup
    runs ``between`` first (the writer commits, the reader catches up), the race a
    query service's background catch-up thread can hit between a request's two reads."""

    def __init__(self, real: Any, between: Callable[[], None]) -> None:
        self._real = real
        self._between: Callable[[], None] | None = between

    def get(self, key: Any) -> Any:
        if self._between is not None:
            between, self._between = self._between, None
            between()
        return self._real.get(key)


@pytest.mark.parametrize("read", ["get", "get_entry", "list", "by_label"])
def test_a_reader_catching_up_between_its_two_lookups_returns_the_newer_version(
    view: View, tmp_path: Path, read: str
) -> None:
    # No history (OPTS): the writer deletes a replaced version in the same batch, so the
    # version the first lookup named is gone when the second one runs.
    feed = Feed("alpha")
    view.apply([feed.upsert("a", "1", labels={"app": "web"})])
    with ViewReader.open(Path(view._h.db.path()), tmp_path / "sec", OPTS) as reader:

        def writer_moves_on() -> None:
            view.apply([feed.upsert("a", "2", labels={"app": "web"})])
            reader.catch_up()

        real = reader._h.cfs[L.CF_VERSIONS]
        reader._h.cfs[L.CF_VERSIONS] = _CatchUpBetweenReads(real, writer_moves_on)  # type: ignore[assignment]
        if read == "get":
            body = reader.get("alpha", "", "Pod", "default", "a")
            assert body is not None
            rv = orjson.loads(body)["metadata"]["resourceVersion"]
        elif read == "get_entry":
            entry = reader.get_entry("alpha", "", "Pod", "default", "a")
            assert entry is not None
            assert entry.resource_version == "2"  # meta and body of the same version
            rv = orjson.loads(entry.body)["metadata"]["resourceVersion"]
        else:
            page = reader.list_objects() if read == "list" else reader.by_label("app", "web")
            assert [i.name for i in page.items] == ["a"]
            rv = orjson.loads(page.items[0].body)["metadata"]["resourceVersion"]
        assert rv == "2"
        reader._h.cfs[L.CF_VERSIONS] = real


def test_a_reader_catching_up_to_a_delete_between_its_lookups_finds_nothing(
    view: View, tmp_path: Path
) -> None:
    feed = Feed("alpha")
    view.apply([feed.upsert("a", "1")])
    with ViewReader.open(Path(view._h.db.path()), tmp_path / "sec", OPTS) as reader:

        def writer_deletes() -> None:
            view.apply([feed.delete("a")])
            reader.catch_up()

        real = reader._h.cfs[L.CF_VERSIONS]
        reader._h.cfs[L.CF_VERSIONS] = _CatchUpBetweenReads(real, writer_deletes)  # type: ignore[assignment]
        assert reader.get("alpha", "", "Pod", "default", "a") is None
        reader._h.cfs[L.CF_VERSIONS] = real

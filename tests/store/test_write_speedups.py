"""store._speedups (a new or changed object's writes in C) against the Python code it
replaces.

The same records go into two stores, one planned with the C writers and one with them
switched off (the planner's Python path, the reference); the stores must be equal byte
for byte, whatever the labels, owners, app, body encoding, history setting and the
kind of change (index fields kept or changed, re-asserted, recreated, deleted).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from view_feed import Feed

from deltas import BodyEncoding
from deltas.digest import item_hash
from store import StoreOptions, View, _speedups
from store import layout as L
from store.reads import scan

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

#: Index strings with the bytes layout.esc rewrites (NUL, 0x01), non-ASCII and plain.
TEXT = st.text(
    st.sampled_from(["a", "Z", "-", ".", "/", "\x00", "\x01", "é", "🚀", "\x02"]), max_size=6
)


Rows = dict[str, list[tuple[bytes, bytes]]]


def dump(view: View) -> Rows:
    """Every key and value of every CF but the wall-clock commit times."""
    out: Rows = {}
    for name in L.ALL_CFS:
        rows = list(scan(view._h.cfs[name], b""))
        if name == L.CF_META:
            rows = [(k, v) for k, v in rows if k[:1] != L.TAG_WALL]
        out[name] = rows
    return out


def apply_both(
    tmp_path: Path, batches: list[list[Any]], opts: StoreOptions, monkeypatch: pytest.MonkeyPatch
) -> tuple[Rows, Rows]:
    with View.open(tmp_path / "c", opts) as fast:
        for batch in batches:
            fast.apply(batch)
        fast_rows = dump(fast)
    # the reference: the planner's Python path (the C writers decline every object)
    monkeypatch.setattr("store.apply.write_new_object", lambda *args: None)
    monkeypatch.setattr("store.apply.write_replacement", lambda *args: None)
    try:
        with View.open(tmp_path / "py", opts) as slow:
            for batch in batches:
                slow.apply(batch)
            slow_rows = dump(slow)
    finally:
        monkeypatch.undo()
    return fast_rows, slow_rows


@FUZZ
@given(
    objects=st.lists(
        st.tuples(
            st.dictionaries(TEXT, TEXT, max_size=4),
            st.lists(TEXT, max_size=3).map(tuple),
            TEXT,
            st.sampled_from([BodyEncoding.JSON, BodyEncoding.MSGPACK]),
            TEXT,
        ),
        min_size=1,
        max_size=12,
    ),
    history=st.booleans(),
)
def test_the_c_writer_and_the_python_path_build_the_same_store(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    objects: list[tuple[dict[str, str], tuple[str, ...], str, BodyEncoding, str]],
    history: bool,
) -> None:
    tmp_path = tmp_path_factory.mktemp("same")
    feed = Feed("alpha", partitions=2)
    first, second = [], []
    for i, (labels, owners, app, encoding, rv) in enumerate(objects):
        name = f"pod-{i}"
        first.append(
            feed.upsert(name, rv or "1", labels=labels, owners=owners, app=app, encoding=encoding)
        )
        # the second batch updates some (Python path in both) and deletes others
        if i % 3 == 0:
            second.append(feed.upsert(name, (rv or "1") + "x", labels={"new": "label"}))
        elif i % 3 == 1:
            second.append(feed.delete(name))
    opts = StoreOptions(history_retention_s=3600 if history else 0)
    fast, slow = apply_both(tmp_path, [first, second], opts, monkeypatch)
    assert fast == slow
    assert fast[L.CF_OBJMETA]  # something was written at all


#: What the second and third batches do to an object.
CHANGES = st.sampled_from(["same-index", "new-index", "reassert", "recreate", "delete", "none"])


@FUZZ
@given(
    objects=st.lists(
        st.tuples(
            st.dictionaries(TEXT, TEXT, max_size=3),
            st.lists(TEXT, max_size=2).map(tuple),
            TEXT,
            st.sampled_from([BodyEncoding.JSON, BodyEncoding.MSGPACK]),
            CHANGES,
            CHANGES,
        ),
        min_size=1,
        max_size=10,
    ),
    history=st.booleans(),
    recent=st.booleans(),
)
def test_changed_objects_are_written_the_same_by_c_and_python(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    objects: list[tuple[dict[str, str], tuple[str, ...], str, BodyEncoding, str, str]],
    history: bool,
    recent: bool,
) -> None:
    tmp_path = tmp_path_factory.mktemp("changed")
    # recent events keep the replaced versions as history (expiry entries); old ones
    # are past the retention at once (the replaced version is deleted)
    start_ms = int(time.time() * 1000) if recent else 1_600_000_000_000
    feed = Feed("alpha", partitions=2, start_ms=start_ms)
    first: list[Any] = []
    later: list[Any] = []  # two changes per object in ONE batch: they chain in the overlay
    for i, (labels, owners, app, encoding, *changes) in enumerate(objects):
        name = f"pod-{i}"
        first.append(
            feed.upsert(name, "1", labels=labels, owners=owners, app=app, encoding=encoding)
        )
        rv, uid, gone = "1", f"uid-{name}", False
        for step, change in enumerate(changes):
            new_rv = f"{rv}.{step}"
            if change == "same-index" and not gone:
                later.append(
                    feed.upsert(name, new_rv, labels=labels, owners=owners, app=app,
                                uid=uid, encoding=encoding, extra=f"v{step}")
                )  # fmt: skip
                rv = new_rv
            elif change == "new-index" and not gone:
                later.append(
                    feed.upsert(name, new_rv, labels={**labels, "step": str(step)},
                                owners=owners[:1], app=app + "x", uid=uid)
                )  # fmt: skip
                rv = new_rv
            elif change == "reassert" and not gone:  # same rv: unchanged
                later.append(feed.upsert(name, rv, labels=labels, owners=owners, app=app, uid=uid))
            elif change == "recreate":  # same rv, another uid (or back after a delete)
                uid = f"uid-{name}-{step}"
                later.append(feed.upsert(name, rv, labels=labels, uid=uid))
                gone = False
            elif change == "delete" and not gone:
                later.append(feed.delete(name))
                gone = True
    opts = StoreOptions(history_retention_s=3600 if history else 0)
    fast, slow = apply_both(tmp_path, [first, later], opts, monkeypatch)
    assert fast == slow
    assert fast[L.CF_OBJMETA] or all("delete" in o[4:] for o in objects)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(),
            st.text(max_size=40), st.binary(max_size=300),
            st.dictionaries(st.text(max_size=5), st.text(max_size=40), max_size=20),
            st.lists(st.text(max_size=5), max_size=20),
        ),
        min_size=15, max_size=20,
    )
)  # fmt: skip
def test_the_index_fields_span_is_the_msgpack_of_labels_owners_and_app(fields: list[Any]) -> None:
    header = msgpack.packb(fields)
    span = _speedups.index_fields_span(header)
    assert span is not None
    start, end = span
    assert header[start:end] == b"".join(msgpack.packb(f) for f in fields[12:15])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_the_index_fields_span_of_garbage_is_none_or_inside_it(raw: bytes) -> None:
    span = _speedups.index_fields_span(raw)
    if span is not None:
        start, end = span
        assert 0 < start <= end <= len(raw)


def test_a_short_header_has_no_index_fields_span() -> None:
    header = msgpack.packb([*range(12), {"a": "b"}, ["o"], "app"])
    assert _speedups.index_fields_span(header) == (13, len(header))
    assert _speedups.index_fields_span(header[:-1]) is None  # cut inside the app
    assert _speedups.index_fields_span(msgpack.packb(list(range(14)))) is None
    assert _speedups.index_fields_span(b"") is None


def test_escaped_index_strings_are_written_as_layout_esc_writes_them(tmp_path: Path) -> None:
    feed = Feed("alpha")
    record = feed.upsert("p", "1", labels={"a\x00b": "c\x01"}, owners=("o\x00",), app="x\x01y")
    with View.open(tmp_path / "s", StoreOptions()) as view:
        view.apply([record])
        objkey = L.object_key("alpha", "", "Pod", "default", "p")
        label_keys = [k for k, _ in scan(view._h.cfs[L.CF_IDX_LABEL], b"")]
        owner_keys = [k for k, _ in scan(view._h.cfs[L.CF_IDX_OWNER], b"")]
        app_keys = [k for k, _ in scan(view._h.cfs[L.CF_IDX_APP], b"")]
    assert label_keys == [L.esc("a\x00b") + b"\x00" + L.esc("c\x01") + b"\x00" + objkey]
    assert owner_keys == [L.owner_prefix("alpha", "o\x00") + objkey]
    assert app_keys == [L.esc("x\x01y") + b"\x00" + objkey]
    assert b"\x01\x02" in label_keys[0] and b"\x01\x01" in app_keys[0]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.text(max_size=200))
def test_item_hash_in_c_equals_the_python_one(key: bytes, resource_version: str) -> None:
    # BLAKE2b block boundaries (128 bytes) fall inside these lengths
    assert _speedups.item_hash(key, resource_version) == item_hash(key, resource_version)


def test_numbers_that_do_not_fit_their_field_fall_back_to_python() -> None:
    handles = (object(),) * 5
    puts: list[Any] = []

    def put(*args: Any) -> None:
        puts.append(args)

    value = b"KD\x01\x00\x00\x00\x00" + b"{}"
    common: dict[str, Any] = dict(part=0, offset=0, event_ms=0, gen=0, flags=0)

    def call(**overrides: Any) -> Any:
        a = {**common, **overrides}
        return _speedups.write_new_object(
            put, handles, value, 7, b"c\x00\x00Pod\x00\x00p", "c",  # type: ignore[arg-type]
            a["part"], a["offset"], a["event_ms"], a["gen"], a["flags"],
            None, {}, (), "", "1",
        )  # fmt: skip

    assert call(gen=2**32) is None
    assert call(part=2**32) is None
    assert call(offset=2**64) is None
    assert call(event_ms=-1) is None
    assert puts == []  # nothing half-written
    ih, meta = call(gen=2**32 - 1)
    assert ih == item_hash(b"\x00Pod\x00\x00p", "1")
    assert L.META.unpack_from(meta)[7] == 2**32 - 1
    assert len(puts) == 2  # the version and the objmeta


def test_the_replacement_writer_declines_what_python_must_decide() -> None:
    """Numbers that do not fit, a value that is not an objmeta, and a possibly unchanged
    object (same item hash and partition) all return None with nothing written."""
    handles = (object(),) * 3
    writes: list[Any] = []

    def put(*args: Any) -> None:
        writes.append(("put", args))

    def delete(*args: Any) -> None:
        writes.append(("delete", args))

    value = b"KD\x01\x00\x00\x00\x00" + b"{}"
    objkey = b"c\x00\x00Pod\x00\x00p"
    ident = objkey[2:]

    def old_meta(rv: str, part: int = 0) -> bytes:
        return L.META.pack(L.SCHEMA_VERSION, 0, 1, part, 0, item_hash(ident, rv), 0, 0)

    def call(old: bytes, rv: str = "2", **overrides: Any) -> Any:
        a: dict[str, Any] = {"part": 0, "offset": 1, "event_ms": 5, "gen": 0, "flags": 0}
        a.update(overrides)
        return _speedups.write_replacement(
            put, delete, handles, value, 7, objkey, "c",  # type: ignore[arg-type]
            a["part"], a["offset"], a["event_ms"], a["gen"], a["flags"],
            None, rv, old, a.get("cutoff"),
        )  # fmt: skip

    assert call(old_meta("1"), gen=2**32) is None
    assert call(old_meta("1"), offset=2**64) is None
    assert call(old_meta("1"), cutoff=2**63) is None
    assert call(b"short") is None  # not an objmeta value
    assert call(old_meta("2")) is None  # same rv, same partition: maybe unchanged
    assert writes == []
    ih, meta, o_ih, o_part, index_unchanged = call(old_meta("2", part=1))  # moved partition
    assert (ih, o_ih, o_part) == (item_hash(ident, "2"), item_hash(ident, "2"), 1)
    assert L.META.unpack_from(meta)[3] == 0
    assert index_unchanged is False  # headers without index fields: Python decides
    # the version and objmeta, then the old version deleted (no history kept)
    assert [w[0] for w in writes] == ["put", "put", "delete"]


def test_labels_given_as_the_headers_msgpack_map_write_what_the_dict_writes() -> None:
    labels = {"app": "web", "a\x00b": "c\x01", "é": "🚀", "long": "v" * 300, "": ""}
    raw = msgpack.packb(labels)
    big = {f"k{i}": "x" * i for i in range(40)}  # a map16 header and str8 strings
    huge = {"k": "x" * 70_000}  # a str32 value

    def puts_of(given: Any) -> list[Any]:
        puts: list[Any] = []
        _speedups.write_new_object(
            lambda *args: puts.append(args), (1, 2, 3, 4, 5),  # type: ignore[arg-type]
            b"KD\x01\x00\x00\x00\x00{}", 7, b"c\x00\x00Pod\x00\x00p", "c",
            0, 0, 0, 0, 0, None, given, ("o",), "web", "1",
        )  # fmt: skip
        return puts

    assert puts_of(raw) == puts_of(labels)
    assert len([p for p in puts_of(raw) if p[2] == 3]) == len(labels)
    assert puts_of(msgpack.packb(big)) == puts_of(big)
    assert puts_of(msgpack.packb(huge)) == puts_of(huge)
    for bad in (b"", b"\x81\xa1a", b"\x81\xa1a\x01", msgpack.packb(labels) + b"\x00"):
        with pytest.raises(ValueError, match="msgpack map"):
            puts_of(bad)

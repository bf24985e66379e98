"""store._speedups (a new object's writes in C) against the Python code it replaces.

The same records go into two stores, one planned with the C writer and one with it
switched off (the planner's Python path, the reference); the stores must be equal byte
for byte, whatever the labels, owners, app, body encoding and history setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    # the reference: the planner's Python path (the C writer declines every object)
    monkeypatch.setattr("store.apply.write_new_object", lambda *args: None)
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

"""The known-keys filter (store/known.py) and the view with and without it: the same
records give the same store, including across a reopen, where the filter is rebuilt
from the keys on disk."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_view_model import stream
from view_feed import Feed

from store import SourceRecord, StoreOptions, View
from store._speedups import split_known
from store.known import MIN_CAPACITY, KnownKeys


def keys(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [f"c\x00\x00Pod\x00ns\x00pod-{rng.getrandbits(64):x}".encode() for _ in range(n)]


def test_a_key_once_given_is_never_new_again() -> None:
    known = KnownKeys(1_000)
    first = keys(800, 1)
    maybe, new = known.split(first)
    assert sorted(maybe + new) == sorted(first)
    assert len(new) >= 790  # a few may be false positives already
    maybe, new = known.split(first)
    assert new == [] and maybe == first


def test_false_positives_stay_near_one_percent_at_capacity() -> None:
    known = KnownKeys(20_000)
    known.split(keys(20_000, 2))
    probe = keys(5_000, 3)
    assert len(known.split(probe)[0]) / len(probe) < 0.03


def test_it_grows_in_layers_and_forgets_nothing() -> None:
    known = KnownKeys(1_000)
    given: list[bytes] = []
    for seed in range(10):
        batch = keys(700, 100 + seed)
        known.split(batch)
        given += batch
    assert known.layers >= 3  # 1,000 + 2,000 + 4,000 > 7,000 keys
    assert known.split(given)[1] == []
    # The later layers keep the false positive rate near their design.
    # Each layer stays within its capacity: the false positives add up to a few %.
    assert len(known.split(keys(5_000, 999))[0]) / 5_000 < 0.05


def test_built_from_existing_keys() -> None:
    present = keys(3_000, 4)
    known = KnownKeys.of(iter(present), count=3_000, chunk=1_000)
    assert known.split(present)[1] == []
    assert known.size_bytes >= MIN_CAPACITY * 10 // 8  # 10 bits per key of the first layer


def test_the_c_probe_refuses_bad_input() -> None:
    with pytest.raises(TypeError):
        split_known([], [b"k"])
    with pytest.raises(ValueError, match="64-byte blocks"):
        split_known([bytearray(10)], [b"k"])
    with pytest.raises(TypeError, match="bytes"):
        split_known([bytearray(64)], ["k"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="capacity"):
        KnownKeys(0)


def clock() -> float:
    return 1_800_000_000.0  # fixed: history retention decides the same in both stores


def apply_in_batches(path: Path, records: list[SourceRecord], opts: StoreOptions, seed: int) -> str:
    """Apply ``records`` in random batches, closing and reopening the writer halfway."""
    rng = random.Random(seed)
    view = View.open(path, opts, clock=clock)
    try:
        i = 0
        reopened = False
        while i < len(records):
            n = rng.randint(1, 60)
            view.apply(records[i : i + n])
            i += n
            if not reopened and i >= len(records) // 2:
                view.close()
                view = View.open(
                    path, opts, clock=clock
                )  # the filter is rebuilt from what is on disk
                reopened = True
        return view.view_digest()
    finally:
        view.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_view_is_the_same_with_and_without_the_filter(tmp_path: Path, seed: int) -> None:
    records, model = stream(seed)
    assert model.swept > 0  # relist sweeps delete objects the filter knows
    with_filter = apply_in_batches(tmp_path / "on", records, StoreOptions(), seed)
    without = apply_in_batches(
        tmp_path / "off", records, StoreOptions(known_keys_filter=False), seed
    )
    assert with_filter == without


def test_objects_written_before_a_reopen_are_updated_not_created_again(tmp_path: Path) -> None:
    feed = Feed("alpha")
    with View.open(tmp_path / "s", StoreOptions()) as view:
        view.apply([feed.upsert(f"p{i}", "1", labels={"app": "a"}) for i in range(50)])
    with View.open(tmp_path / "s", StoreOptions()) as view:
        view.apply([feed.upsert(f"p{i}", "2", labels={"app": "b"}) for i in range(50)])
        assert view.count() == 50
        # A re-created object would leave its old label index entries behind.
        assert view.by_label("app", "a").items == []
        assert len(view.by_label("app", "b").items) == 50

"""The per-partition, order-independent digest and key routing."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltas import ConfigError, RunningDigest, item_hash, partition_for

ITEMS = st.dictionaries(st.binary(min_size=1, max_size=40), st.text(max_size=12), max_size=30)


def digest_of(items: list[tuple[bytes, str]]) -> RunningDigest:
    d = RunningDigest()
    for key, rv in items:
        d.add(key, rv)
    return d


@settings(max_examples=100)
@given(ITEMS, st.randoms(use_true_random=False))
def test_order_does_not_matter(items: dict[bytes, str], rnd: object) -> None:
    pairs = list(items.items())
    shuffled = pairs[:]
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert digest_of(pairs) == digest_of(shuffled)


@settings(max_examples=100)
@given(ITEMS, ITEMS)
def test_remove_undoes_add(base: dict[bytes, str], extra: dict[bytes, str]) -> None:
    d = digest_of(list(base.items()))
    before = RunningDigest(d.count, d.hash)
    for key, rv in extra.items():
        d.add(key, rv)
    for key, rv in reversed(list(extra.items())):
        d.remove(key, rv)
    assert d == before


def test_empty_digest_is_zero() -> None:
    d = digest_of([(b"k", "1"), (b"j", "2")])
    d.remove(b"k", "1")
    d.remove(b"j", "2")
    assert d == RunningDigest(0, 0)


@settings(max_examples=100)
@given(ITEMS, st.text(max_size=12))
def test_changing_one_resource_version_changes_the_digest(
    items: dict[bytes, str], new_rv: str
) -> None:
    if not items:
        items = {b"k": "1"}
    key, rv = next(iter(items.items()))
    if new_rv == rv:
        new_rv = rv + "0"
    before = digest_of(list(items.items()))
    after = digest_of(list({**items, key: new_rv}.items()))
    assert after.count == before.count
    assert after.hash != before.hash
    # The producer's incremental update (remove old, add new) reaches the same state.
    before.remove(key, rv)
    before.add(key, new_rv)
    assert before == after


def test_key_and_version_do_not_run_together() -> None:
    # NUL separates key from resourceVersion, so ("a", "b1") != ("ab", "1").
    assert item_hash(b"a", "b1") != item_hash(b"ab", "1")


def test_hash_arithmetic_wraps_mod_2_64() -> None:
    d = RunningDigest()
    d.add_hash(2**64 - 1)
    d.add_hash(2)
    assert d == RunningDigest(2, 1)
    d.remove_hash(5)
    assert d == RunningDigest(1, 2**64 - 4)
    assert 0 <= d.hash < 2**64


def test_add_hash_matches_add() -> None:
    a, b = RunningDigest(), RunningDigest()
    a.add(b"k", "7")
    b.add_hash(item_hash(b"k", "7"))
    assert a == b
    a.remove(b"k", "7")
    b.remove_hash(item_hash(b"k", "7"))
    assert a == b == RunningDigest()


def test_item_hash_is_pinned() -> None:
    # Producers and consumers of different releases must agree: this value never changes.
    assert item_hash(b"\x00Pod\x00default\x00web-0", "12345") == 0x16FFC4F7FC2D46A7


def test_partition_for_is_pinned_crc32() -> None:
    key = b"\x00Pod\x00default\x00web-0"
    assert zlib.crc32(key) == 2246568105
    assert partition_for(key, 12) == 2246568105 % 12 == 9
    assert partition_for(key, 1) == 0


@settings(max_examples=200)
@given(st.binary(max_size=64), st.integers(1, 1000))
def test_partition_for_is_stable_and_in_range(key: bytes, partitions: int) -> None:
    p = partition_for(key, partitions)
    assert 0 <= p < partitions
    assert p == partition_for(bytes(key), partitions) == zlib.crc32(key) % partitions


@pytest.mark.parametrize("partitions", [0, -1])
def test_partition_count_must_be_positive(partitions: int) -> None:
    with pytest.raises(ConfigError, match=f"at least 1 partition, got {partitions}"):
        partition_for(b"k", partitions)


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_replace_hash_is_remove_then_add(start: int, old: int, new: int) -> None:
    a, b = RunningDigest(3, start), RunningDigest(3, start)
    a.remove_hash(old)
    a.add_hash(new)
    b.replace_hash(old, new)
    assert a == b

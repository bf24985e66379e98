"""The object keys a store may hold, as a Bloom filter the writer keeps in memory.

The planner reads the stored meta of every object a batch touches (one MultiGet) to
tell a new object from a changed one. During a catch-up, a replay or a first sync
nearly every key is new, and that read found nothing at ~2-3 us of the consumer's
main thread per record (docs/benchmarks.md, Consume, session 12). The filter answers
"cannot be there" without touching RocksDB: keys it has never been given are read as
absent; the others (present, or ~1 % false positives) are read as before.

Why that is exact: the filter is filled at open with every key of ``objmeta``, and
every key a plan touches goes through :meth:`KnownKeys.split`, which adds the ones it
did not know (before the commit: a plan that is never committed only leaves extra
keys, which cost a read). A Bloom filter never unlearns a key, so the keys it knows
are a superset of the keys the store holds, whatever was deleted since.

Layers: when the last layer has taken its capacity, a new one twice as large is
added; a key is known if any layer knows it. Memory: ~1.25 bytes per key per layer
filled (10 bits), e.g. ~2.5 MB for a million objects.
"""

from __future__ import annotations

from collections.abc import Iterable

from store._speedups import split_known

#: Filter bits per key: ~1 % false positives with 6 probes in one 64-byte block.
BITS_PER_KEY = 10
#: Capacity of the first layer when the store holds fewer objects (keys).
MIN_CAPACITY = 1 << 16
_BLOCK_BYTES = 64


class KnownKeys:
    """Keys the store may hold. Single-threaded, like the writer that owns it."""

    def __init__(self, capacity: int = MIN_CAPACITY) -> None:
        """``capacity``: keys the first layer takes at ~1 % false positives."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._layers: list[bytearray] = []
        self._room = 0  #: keys the last layer takes before the next one is added
        self._next_capacity = capacity
        self._grow()

    @classmethod
    def of(cls, keys: Iterable[bytes], count: int, chunk: int = 10_000) -> KnownKeys:
        """A filter knowing ``keys`` (about ``count`` of them: the first layer takes twice
        that, at least MIN_CAPACITY, so a store can double before a second layer)."""
        known = cls(max(2 * count, MIN_CAPACITY))
        batch: list[bytes] = []
        for key in keys:
            batch.append(key)
            if len(batch) >= chunk:
                known.split(batch)
                batch = []
        if batch:
            known.split(batch)
        return known

    @property
    def layers(self) -> int:
        return len(self._layers)

    @property
    def size_bytes(self) -> int:
        return sum(len(layer) for layer in self._layers)

    def split(self, keys: list[bytes]) -> tuple[list[bytes], list[bytes]]:
        """(keys the store may hold, keys it cannot hold); the filter knows both now."""
        if len(keys) > self._room:
            self._grow()  # before: a layer never takes more keys than its capacity
        maybe, new = split_known(self._layers, keys)
        self._room -= len(new)
        return maybe, new

    def _grow(self) -> None:
        capacity = self._next_capacity
        blocks = -(-capacity * BITS_PER_KEY // (8 * _BLOCK_BYTES))
        self._layers.append(bytearray(blocks * _BLOCK_BYTES))
        self._room = capacity
        self._next_capacity = 2 * capacity

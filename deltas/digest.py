"""Order-independent digest of a set of (key, resourceVersion) pairs. Pure code.

Producer and consumer both keep one per partition, updated incrementally:
add an item when an object appears, remove it when it goes, remove + add when
its resourceVersion changes. Equal sets give equal digests whatever the order.
The resourceVersion is the one *last sent* for the object: the producer
suppresses noise-only updates, so the topic (and the view) keep that one.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass

from deltas.errors import ConfigError

_MASK = 2**64 - 1


def item_hash(key: bytes, resource_version: str) -> int:
    """64-bit hash of one (key, resourceVersion) pair."""
    h = hashlib.blake2b(key, digest_size=8)
    h.update(b"\x00")
    h.update(resource_version.encode())
    return int.from_bytes(h.digest(), "big")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition a key routes to. Both sides agree on it, so digests are per partition."""
    if partitions < 1:
        raise ConfigError(f"a topic has at least 1 partition, got {partitions}")
    return zlib.crc32(key) % partitions


@dataclass(slots=True)
class RunningDigest:
    """Mutable accumulator: count of items and the sum of their hashes mod 2**64."""

    count: int = 0
    hash: int = 0

    def add(self, key: bytes, resource_version: str) -> None:
        self.count += 1
        self.hash = (self.hash + item_hash(key, resource_version)) & _MASK

    def remove(self, key: bytes, resource_version: str) -> None:
        self.count -= 1
        self.hash = (self.hash - item_hash(key, resource_version)) & _MASK

    def add_hash(self, value: int) -> None:
        self.count += 1
        self.hash = (self.hash + value) & _MASK

    def remove_hash(self, value: int) -> None:
        self.count -= 1
        self.hash = (self.hash - value) & _MASK

    def replace_hash(self, old: int, new: int) -> None:
        """``remove_hash(old)`` then ``add_hash(new)``, in one call (an update's)."""
        self.hash = (self.hash - old + new) & _MASK

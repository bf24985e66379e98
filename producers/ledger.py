"""What the topic holds, per key: the fingerprint and resourceVersion last sent.
Pure code. Never whole objects: ~300 bytes per live object.

The ledger is updated when a record is handed to the sink (which never drops
records), so it always equals "the topic's latest state once the sink drains";
the per-partition digests are kept in the same step, in the same order as the
records, which is what lets a DIGEST record describe exactly what precedes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from deltas import RunningDigest, item_hash, partition_for
from producers.kinds import GroupKind


class Entry:
    """One live object: what was last sent for it."""

    __slots__ = ("fingerprint", "mark", "resource_version")

    def __init__(self, fingerprint: bytes, resource_version: str, mark: int) -> None:
        self.fingerprint = fingerprint  #: 8-byte content hash (resourceVersion excluded)
        self.resource_version = resource_version  #: the rv in the last record sent
        self.mark = mark  #: relist generation that last saw the object


@dataclass(frozen=True, slots=True)
class Vanished:
    """An object a relist no longer returned: it was deleted while we were not watching."""

    key: bytes
    resource_version: str  #: the last rv sent for it


class KindLedger:
    """Entries of one (group, kind), sharing the cluster's per-partition digests."""

    __slots__ = ("_digests", "_entries", "_generation", "_partitions", "group_kind", "version")

    def __init__(self, group_kind: GroupKind, digests: list[RunningDigest]) -> None:
        self.group_kind = group_kind
        #: API version of the last object recorded (DELETEs need one in their key).
        self.version = ""
        self._digests = digests
        self._partitions = len(digests)
        self._entries: dict[bytes, Entry] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def get(self, key: bytes) -> Entry | None:
        return self._entries.get(key)

    def snapshot_keys(self) -> list[bytes]:
        return list(self._entries)

    def unchanged(self, key: bytes, fingerprint: bytes) -> bool:
        """True when ``key`` was last sent with this content (the update is noise).
        Marks the entry as seen by the current relist either way."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        entry.mark = self._generation
        return entry.fingerprint == fingerprint

    def record_upsert(
        self, key: bytes, fingerprint: bytes, resource_version: str, partition: int | None = None
    ) -> None:
        """An UPSERT of ``key`` is being sent (``partition``: the key's, if known)."""
        if partition is None:
            partition = partition_for(key, self._partitions)
        digest = self._digests[partition]
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = Entry(fingerprint, resource_version, self._generation)
            digest.add_hash(item_hash(key, resource_version))
        else:
            digest.replace_hash(
                item_hash(key, entry.resource_version), item_hash(key, resource_version)
            )
            entry.fingerprint = fingerprint
            entry.resource_version = resource_version
            entry.mark = self._generation

    def record_delete(self, key: bytes) -> Entry | None:
        """A DELETE of ``key`` is being sent; returns the entry it had (None: unknown key)."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            digest = self._digests[partition_for(key, self._partitions)]
            digest.remove_hash(item_hash(key, entry.resource_version))
        return entry

    # -- relists ---------------------------------------------------------------------

    def begin_relist(self) -> None:
        """From now on, objects not seen (``unchanged``/``record_upsert``) are vanished."""
        self._generation += 1

    def vanished(self) -> list[Vanished]:
        """Objects the current relist did not return (call after the last page)."""
        gen = self._generation
        return [
            Vanished(key, entry.resource_version)
            for key, entry in self._entries.items()
            if entry.mark != gen
        ]


class Ledger:
    """Every kind of one cluster plus the per-partition digests of its topic."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.digests = [RunningDigest() for _ in range(partitions)]
        self._kinds: dict[GroupKind, KindLedger] = {}

    def kind(self, group_kind: GroupKind) -> KindLedger:
        ledger = self._kinds.get(group_kind)
        if ledger is None:
            ledger = self._kinds[group_kind] = KindLedger(group_kind, self.digests)
        return ledger

    def kinds(self) -> list[GroupKind]:
        return list(self._kinds)

    def drop_kind(self, group_kind: GroupKind) -> None:
        """Forget an empty kind (after its objects were deleted)."""
        ledger = self._kinds.get(group_kind)
        if ledger is not None and not len(ledger):
            del self._kinds[group_kind]

    def __len__(self) -> int:
        return sum(len(k) for k in self._kinds.values())

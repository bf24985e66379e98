"""Values the view returns: read results, cluster status, apply results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from deltas.model import Op
from store.records import DigestVerdict, Rejected


@dataclass(frozen=True, slots=True)
class Item:
    """One object of a LIST or index lookup: identity and body (JSON bytes, as stored)."""

    cluster: str
    group: str  #: "" for the core API group
    kind: str
    namespace: str  #: "" for cluster-scoped kinds
    name: str
    body: bytes  #: the object's JSON, exactly as stored (no re-encoding)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results. Pass ``next_cursor`` as ``after`` to get the next page."""

    items: list[Item]
    #: Opaque cursor (a store key) after the last item; None when there is nothing more.
    next_cursor: bytes | None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object with the metadata the view keeps beside it."""

    cluster: str
    group: str
    version: str  #: API version the producer served it under
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    seq: int  #: producer sequence number of the record that wrote this version
    session: str  #: producer session of that record
    partition: int  #: Kafka partition the record came from (the digest it counts in)
    offset: int  #: Kafka offset of that record
    event_time_ms: int  #: when the producer observed this version, Unix ms
    labels: Mapping[str, str]
    owners: tuple[str, ...]
    app: str
    body: bytes  #: JSON
    #: For versions read from history: when this version stopped being current (Unix ms);
    #: None for the current version.
    superseded_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed."""

    position: int  #: monotonic, starts at 1, never reused
    cluster: str
    group: str
    kind: str
    namespace: str
    name: str
    op: Op  #: UPSERT (created or changed) or DELETE
    resource_version: str  #: the new version ("" for deletes)
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """What the view knows about one partition of a cluster topic."""

    partition: int
    next_offset: int | None  #: next Kafka offset to read; None if never consumed
    object_count: int  #: live objects that arrived on this partition (running digest count)
    digest_hash: int  #: running digest hash (sum mod 2**64 of item hashes)
    session: str  #: the producer session last seen on this partition
    last_seq: int  #: its last sequence number
    open_relists: int  #: relists started and not yet ended on this partition


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    cluster: str
    #: "syncing": a relist is open; "synced": every relist seen has ended;
    #: "unknown": no relist seen yet (the view may be incomplete).
    sync_state: str
    partitions: list[PartitionStatus]
    counts_by_kind: Mapping[tuple[str, str], int]  #: (group, kind) -> live objects
    object_count: int
    last_verdict: DigestVerdict | None  #: the latest DIGEST check
    digest_checks: int
    digest_mismatches: int
    last_event_time_ms: int  #: event time of the latest applied record (producer clock)
    last_record_time_ms: int  #: Kafka timestamp of the latest applied record
    last_commit_ms: int | None  #: wall clock of the latest commit that touched the cluster


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What one commit did."""

    applied: int  #: records accepted (including those that changed nothing)
    skipped: int  #: records below the stored next offset (already applied: replay)
    rejected: int  #: records refused (listed in the plan's ``rejected``)
    unchanged: int  #: accepted records that changed nothing (same uid+rv, absent delete)
    changes: int  #: change-feed entries written (creates, updates, deletes incl. relist sweeps)
    digest_verdicts: list[DigestVerdict] = field(default_factory=list)
    #: (topic, partition) -> next offset stored by this commit, for every partition in it
    offsets: Mapping[tuple[str, int], int] = field(default_factory=dict)
    #: the refused records with reasons (same as the plan's ``rejected``)
    rejections: tuple[Rejected, ...] = ()


__all__ = [
    "ApplyResult",
    "Change",
    "ClusterStatus",
    "DigestVerdict",
    "Item",
    "Page",
    "PartitionStatus",
    "Rejected",
    "StoredObject",
]

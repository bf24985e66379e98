"""The values that travel on the wire: one delta = one change of one resource,
or one control record (relist markers, per-partition digest). Pure data."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from deltas.keys import DIGEST_KEY, ResourceKey, relist_key


class Op(enum.IntEnum):
    """What a record means. Values are on the wire: never renumber."""

    UPSERT = 1  #: the object now has this content
    DELETE = 2  #: the object is gone (body empty)
    RELIST_START = 3  #: a (re)list of one kind begins in this partition
    RELIST_END = 4  #: that (re)list is complete in this partition
    DIGEST = 5  #: count + order-independent hash of what this partition holds


class BodyEncoding(enum.IntEnum):
    """How ``body`` is encoded. Values are on the wire: never renumber."""

    NONE = 0  #: no body (deletes, control records)
    JSON = 1  #: UTF-8 JSON of the Kubernetes object, as served by the query API
    MSGPACK = 2  #: msgpack of the Kubernetes object


@dataclass(frozen=True, slots=True)
class RelistMarker:
    """Payload of RELIST_START / RELIST_END."""

    relist_id: str  #: same on the start and end marker of one relist
    #: True when every object of the kind is re-sent between the markers, so the
    #: consumer may delete what was not re-asserted. False when the producer sent
    #: only what differs and explicit DELETE records for what vanished.
    full: bool


@dataclass(frozen=True, slots=True)
class DigestMarker:
    """Payload of DIGEST: the state of one partition of the cluster topic."""

    partition: int  #: the partition this digest describes (keys route by crc32)
    count: int  #: number of live objects whose key routes to ``partition``
    hash: int  #: sum mod 2**64 of item_hash(key, resourceVersion) over those objects


@dataclass(frozen=True, slots=True)
class Delta:
    """One record of a cluster topic."""

    op: Op
    cluster: str  #: cluster id; must equal the topic's cluster
    key: ResourceKey  #: for relist markers: the kind's group/version/kind, namespace/name ""
    uid: str = ""  #: metadata.uid ("" for control records)
    resource_version: str = ""  #: opaque: compare for equality only
    seq: int = 0  #: producer sequence number within ``session``, strictly increasing
    session: str = ""  #: producer session id (random per producer process start)
    event_time_ms: int = 0  #: when the producer observed the change, Unix ms
    #: Index fields lifted out of the body so consumers never decode it.
    labels: Mapping[str, str] = field(default_factory=dict)
    owners: tuple[str, ...] = ()  #: ownerReferences[].uid
    app: str = ""  #: moniker.spinnaker.io/application annotation, "" if none
    body_encoding: BodyEncoding = BodyEncoding.NONE
    body: bytes = b""
    relist: RelistMarker | None = None
    digest: DigestMarker | None = None

    def kafka_key(self) -> bytes:
        """Compaction identity of the record."""
        if self.op is Op.DIGEST:
            assert self.digest is not None
            return DIGEST_KEY + b"\x00" + str(self.digest.partition).encode()
        if self.op in (Op.RELIST_START, Op.RELIST_END):
            return relist_key(self.key.group, self.key.kind)
        return self.key.identity_bytes()

    @property
    def is_control(self) -> bool:
        return self.op >= Op.RELIST_START

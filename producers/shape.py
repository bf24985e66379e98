"""Turn a served object's raw JSON into what is sent, parsing only what changes. Pure code.

The initial sync handles every object of the cluster, and parsing each whole object
into Python dicts, serializing it again and freeing it was most of the producer's
CPU (the object trees do not stay in the CPU cache). Here msgspec splits an object
into its top-level members, and ``metadata`` into its fields, as raw JSON spans it
does not build; only what is changed or read is decoded: metadata's name,
namespace, uid, resourceVersion, labels, ownerReferences and annotations, a
Secret's data, a Node's status.

The body sent is the object's JSON with its top-level members and its metadata
sorted by key (``apiVersion``/``kind`` set from the watched kind, as
``strip.strip_object`` does), every other value exactly as the API server
serialized it. The server serializes one object version the same way in LIST
and WATCH responses, so the same object gives the same body either way (what the
fingerprint needs); parsed, the body equals ``strip_object`` of the object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import msgspec

from producers.records import index_fields
from producers.strip import (
    LAST_APPLIED,
    LEADER_ANNOTATION,
    KindRules,
    redact_secret,
    strip_node_heartbeats,
)

#: An object or metadata as its members, undecoded. Decoded values replace raw ones
#: where they change; the encoder writes both kinds.
Members = dict[str, Any]

_MEMBERS: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_VALUE: Final = msgspec.json.Decoder()
#: Sorted keys: decoded dicts (metadata, annotations, ...) are canonical; raw values
#: are written as they are.
_ENCODER: Final = msgspec.json.Encoder(order="sorted")


def members(raw: bytes | msgspec.Raw) -> Members | None:
    """The members of a JSON object, undecoded; None if ``raw`` is not an object."""
    try:
        return _MEMBERS.decode(raw)
    except msgspec.DecodeError:
        return None


def value(raw: msgspec.Raw | None) -> Any:
    """One raw member decoded (None when absent)."""
    return None if raw is None else _VALUE.decode(raw)


def decoded(raw: bytes | msgspec.Raw) -> Any:
    """A whole raw value decoded; raises msgspec.DecodeError if it is not JSON."""
    return _VALUE.decode(raw)


def encode(members_: Members) -> bytes:
    return _ENCODER.encode(members_)


def resource_version_of_members(fields: Members) -> str:
    """``metadata.resourceVersion`` of an object split into members, "" if it has none."""
    return resource_version_of_meta(members(fields["metadata"]) if "metadata" in fields else None)


def resource_version_of_meta(meta: Members | None) -> str:
    """``resourceVersion`` of metadata split into its fields, "" if it has none."""
    rv = value(meta.get("resourceVersion")) if meta else None
    return rv if isinstance(rv, str) else ""


@dataclass(slots=True)
class Opened:
    """An object split into members, with the identity the emitter keys and filters by."""

    fields: Members  #: top-level members but metadata
    meta: Members  #: metadata's fields
    namespace: str
    name: str
    #: ``metadata.resourceVersion``, "" unless it is a string (decoded once: every
    #: watch event needs it, and so does the record).
    resource_version: str

    def text(self, field: str) -> str:
        """A metadata field as a string ("" when absent or empty), like ``str(x or "")``."""
        found = value(self.meta.get(field))
        return found if type(found) is str else str(found or "")


class Shaped(NamedTuple):
    """What the record needs: the body and the header fields lifted from metadata.
    (A tuple: a frozen dataclass cost ~0.7 us to build, once per event.)"""

    body: bytes
    resource_version: str
    uid: str
    labels: dict[str, str]
    owners: tuple[str, ...]
    app: str


#: What ``producers._speedups.shape`` returns: the same as ``open`` + ``finish``:
#: (body, namespace, name, resource_version, uid, labels, owners, app).
FastShaped = tuple[bytes, str, str, str, str, dict[str, str], tuple[str, ...], str]
#: What ``producers._speedups.shape_event`` returns: the event type, then FastShaped.
FastEvent = tuple[str, bytes, str, str, str, str, dict[str, str], tuple[str, ...], str]


class KindShaper(KindRules):
    """Shapes the objects of one kind (what depends on the kind is worked out once)."""

    __slots__ = ()

    def fast_args(self) -> tuple[bytes, bytes, bool] | None:
        """The kind's arguments after ``raw`` to ``producers._speedups.shape``, which
        returns (body, namespace, name, resource_version, uid, labels, owners, app) as
        ``open`` + ``finish`` would, or None when the Python path must run (anything
        unusual). None here: kinds whose shaping the C code does not do (Secrets, Nodes
        with heartbeats stripped)."""
        if self._secret or self._node:
            return None
        return (
            _ENCODER.encode(self.api_version),
            _ENCODER.encode(self.kind),
            self._drop_last_applied,
        )

    def open(self, raw: bytes | msgspec.Raw) -> Opened | None:
        """Split ``raw``; None when it is not an object with a metadata object and a name."""
        fields = members(raw)
        return None if fields is None else self.open_members(fields)

    def open_members(self, fields: Members) -> Opened | None:
        """``open`` of an object already split into its members (which it takes over)."""
        if "metadata" not in fields:
            return None
        return self.open_split(fields, members(fields.pop("metadata")))

    def open_split(self, fields: Members, meta: Members | None) -> Opened | None:
        """``open`` of an object split into its members but metadata, and metadata
        into its fields (None: not an object); takes both over."""
        if meta is None:
            return None
        name = value(meta.get("name"))
        if not name:
            return None
        namespace = value(meta.get("namespace")) or ""
        rv = value(meta.get("resourceVersion"))
        return Opened(
            fields,
            meta,
            namespace if type(namespace) is str else str(namespace),
            name if type(name) is str else str(name),
            rv if type(rv) is str else "",
        )

    def finish(self, opened: Opened) -> Shaped:
        """Strip (as ``strip.strip_object``), lift the index fields, encode the body."""
        fields, meta = opened.fields, opened.meta
        fields.pop("apiVersion", None)
        fields.pop("kind", None)
        meta.pop("managedFields", None)
        annotations = value(meta.get("annotations"))
        if annotations and isinstance(annotations, dict):
            if self._drop_last_applied:
                annotations.pop(LAST_APPLIED, None)
            annotations.pop(LEADER_ANNOTATION, None)
            if annotations:
                meta["annotations"] = annotations
            else:
                del meta["annotations"]
        if self._secret:
            # redact_secret on the parts it reads and writes, decoded.
            part: dict[str, Any] = {"metadata": {}}
            if "annotations" in meta:
                part["metadata"]["annotations"] = annotations
            for secret_field in ("data", "stringData"):
                if secret_field in fields:
                    part[secret_field] = value(fields.pop(secret_field))
            redact_secret(part, self._hash_key)
            annotations = meta["annotations"] = part["metadata"]["annotations"]
        elif self._node and "status" in fields:
            status = value(fields["status"])
            strip_node_heartbeats({"status": status})
            fields["status"] = status
        index: dict[str, Any] = {"annotations": annotations}
        if "labels" in meta:
            index["labels"] = value(meta["labels"])
        if "ownerReferences" in meta:
            index["ownerReferences"] = value(meta["ownerReferences"])
        labels, owners, app = index_fields(index)
        fields["metadata"] = meta
        fields["apiVersion"] = self.api_version
        fields["kind"] = self.kind
        return Shaped(
            encode(fields),
            opened.resource_version,
            opened.text("uid"),
            labels,
            owners,
            app,
        )

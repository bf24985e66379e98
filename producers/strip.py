"""What is removed from a served Kubernetes object before it is sent (noise, Secret
data), on a parsed object, and the content fingerprint. Pure code.

``strip_object`` is the reference: the producer itself shapes raw JSON
(``producers.shape``), which parses only the parts this changes and gives the same
object. The fingerprint ignores ``metadata.resourceVersion``: an update that
changes only the resourceVersion, or only stripped fields, has the same
fingerprint and is not sent.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Final

import orjson

from producers._speedups import fingerprint as _keyed_fingerprint
from producers.config import StripConfig

LAST_APPLIED: Final = "kubectl.kubernetes.io/last-applied-configuration"
#: Old-style leader election record on Endpoints/ConfigMaps, rewritten every ~2 s.
LEADER_ANNOTATION: Final = "control-plane.alpha.kubernetes.io/leader"
SECRET_KEYS_ANNOTATION: Final = "kubedelta.io/data-keys"
SECRET_HASH_ANNOTATION: Final = "kubedelta.io/data-hash"
FINGERPRINT_SIZE: Final = 8

_SORT: Final = orjson.OPT_SORT_KEYS


class KindRules:
    """What stripping decides from the kind and the configuration alone, worked out once
    per kind, not per object (the initial sync handles every object of the cluster).
    Shared by :class:`KindStripper` (decoded objects) and ``shape.KindShaper`` (raw JSON)."""

    __slots__ = ("_drop_last_applied", "_hash_key", "_node", "_secret", "api_version", "kind")

    def __init__(self, group: str, version: str, kind: str, config: StripConfig) -> None:
        self.api_version = f"{group}/{version}" if group else version
        self.kind = kind
        self._secret = group == "" and kind == "Secret"
        self._node = group == "" and kind == "Node" and config.strip_node_heartbeats
        self._drop_last_applied = self._secret or not config.keep_last_applied
        self._hash_key = config.secret_hash_key


class KindStripper(KindRules):
    """:func:`strip_object` for one kind."""

    __slots__ = ()

    def strip(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove noise and secrets from ``obj`` in place and return it (see strip_object)."""
        obj["apiVersion"] = self.api_version
        obj["kind"] = self.kind
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            meta.pop("managedFields", None)
            annotations = meta.get("annotations")
            if annotations and isinstance(annotations, dict):
                if self._drop_last_applied:
                    annotations.pop(LAST_APPLIED, None)
                annotations.pop(LEADER_ANNOTATION, None)
                if not annotations:
                    del meta["annotations"]
        if self._secret:
            redact_secret(obj, self._hash_key)
        elif self._node:
            strip_node_heartbeats(obj)
        return obj


def strip_object(
    obj: dict[str, Any],
    *,
    group: str,
    version: str,
    kind: str,
    config: StripConfig,
) -> dict[str, Any]:
    """Remove noise and secrets from ``obj`` in place and return it.

    ``apiVersion``/``kind`` are set from the kind being watched: LIST items of
    built-in kinds omit them while WATCH events carry them, and the fingerprint
    of the same object must not depend on which one delivered it.
    """
    return KindStripper(group, version, kind, config).strip(obj)


def redact_secret(obj: dict[str, Any], hash_key: bytes) -> None:
    """Replace ``data``/``stringData`` by their key names and a keyed content hash,
    both as annotations so the object stays a valid Secret."""
    data = obj.pop("data", None) or {}
    string_data = obj.pop("stringData", None) or {}
    if not isinstance(data, dict):
        data = {}
    if not isinstance(string_data, dict):
        string_data = {}
    names = sorted(set(data) | set(string_data))
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[SECRET_KEYS_ANNOTATION] = ",".join(names)
    annotations[SECRET_HASH_ANNOTATION] = secret_content_hash(data, string_data, hash_key)


def secret_content_hash(data: dict[str, Any], string_data: dict[str, Any], hash_key: bytes) -> str:
    """Keyed BLAKE2b-128 over the sorted (name, value) pairs: changes when any value does."""
    h = hashlib.blake2b(digest_size=16, key=hash_key[:64], person=b"kubedelta-secret")
    for prefix, values in ((b"d", data), (b"s", string_data)):
        for name in sorted(values):
            h.update(prefix + str(name).encode() + b"\x00" + str(values[name]).encode() + b"\x00")
    return h.hexdigest()


def strip_node_heartbeats(obj: dict[str, Any]) -> None:
    status = obj.get("status")
    if not isinstance(status, dict):
        return
    for condition in status.get("conditions") or ():
        if isinstance(condition, dict):
            condition.pop("lastHeartbeatTime", None)


def resource_version_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        rv = meta.get("resourceVersion")
        if isinstance(rv, str):
            return rv
    return ""


def body_of(obj: dict[str, Any]) -> bytes:
    """Sorted-key JSON of a whole parsed object (benchmarks and tests; the producer's
    bodies come from ``producers.shape``: top level and metadata sorted)."""
    return orjson.dumps(obj, option=_SORT)


#: The fingerprint's SipHash key, random per process: fingerprints are compared only
#: within the process that made them (a restarted producer hashes the bodies it reads
#: back, producers/restore.py), and an unknown key means no one who can edit objects
#: can aim for an edit whose fingerprint collides with the object's last one.
_FINGERPRINT_KEY: Final = os.urandom(16)
_RV_MEMBER: Final = b',"resourceVersion":'


def fingerprint_of_body(body: bytes, resource_version: str) -> bytes:
    """8-byte keyed SipHash-1-3 of ``body`` with its own ``"resourceVersion":"<rv>"``
    member cut out (producers/_speedups.c; ~1 us per 3 KiB body, BLAKE2b took ~3).

    Works on bytes, so the producer serializes each object once and a restarted
    producer can fingerprint bodies it reads back without parsing them. Bodies
    have metadata's keys sorted, so its resourceVersion follows at least ``name``
    and the member is always preceded by a comma. Only the first occurrence of
    exactly this member with exactly this value is cut: another field would have
    to hold the object's own, current resourceVersion to be affected.
    """
    member = _RV_MEMBER + orjson.dumps(resource_version) if resource_version else b""
    return _keyed_fingerprint(body, member, _FINGERPRINT_KEY)


def fingerprint(obj: dict[str, Any]) -> bytes:
    """The fingerprint of an (already stripped) object: see :func:`fingerprint_of_body`."""
    return fingerprint_of_body(body_of(obj), resource_version_of(obj))

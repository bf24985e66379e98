"""Resource identity, Kafka message keys and topic names. Pure code, no I/O.

A resource's identity is (group, kind, namespace, name). The API *version* is
carried in every record but is deliberately not part of the key: the same
object served under a new version (a CRD upgrade) must keep its key, or a
compacted topic would keep a stale copy under the old one forever.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from deltas.errors import DeltaFormatError

KEY_SEPARATOR = "\x00"
#: First byte of every control-record key. 0xFF never starts a UTF-8 sequence,
#: so control keys can never collide with a resource key.
CONTROL_KEY_PREFIX = b"\xff"
DIGEST_KEY = CONTROL_KEY_PREFIX + b"digest"

_CLUSTER_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TOPIC_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")

DEFAULT_TOPIC_PREFIX = "kubedelta.cluster"
DEAD_LETTER_TOPIC = "kubedelta.deadletter"


@dataclass(frozen=True, slots=True)
class ResourceKey:
    """Where a resource lives. ``namespace`` is "" for cluster-scoped kinds; ``group`` is
    "" for the core API group."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    def identity_bytes(self) -> bytes:
        """The Kafka message key and store key suffix: group, kind, namespace, name."""
        return identity_bytes(self.group, self.kind, self.namespace, self.name)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def identity_bytes(group: str, kind: str, namespace: str, name: str) -> bytes:
    """NUL-joined UTF-8; NUL never occurs in Kubernetes names, so the join is reversible."""
    check_key_parts(group, kind, namespace, name)
    return _utf8(f"{group}\x00{kind}\x00{namespace}\x00{name}")


def check_key_parts(*parts: str) -> None:
    """Keys join their parts with NUL, so no part may contain one."""
    for part in parts:
        if KEY_SEPARATOR in part:
            raise DeltaFormatError(f"key part {part!r} contains a NUL character")


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # lone surrogates: not representable on the wire
        raise DeltaFormatError(f"key {text!r} is not encodable as UTF-8: {exc}") from exc


def parse_identity(raw: bytes) -> tuple[str, str, str, str]:
    """Inverse of :func:`identity_bytes` -> (group, kind, namespace, name)."""
    try:
        parts = raw.decode().split(KEY_SEPARATOR)
    except UnicodeDecodeError as exc:
        raise DeltaFormatError(f"resource key is not UTF-8: {raw!r}") from exc
    if len(parts) != 4:
        raise DeltaFormatError(f"resource key must have 4 parts, got {len(parts)}: {raw!r}")
    return parts[0], parts[1], parts[2], parts[3]


def relist_key(group: str, kind: str) -> bytes:
    """Kafka key of a relist marker: one per (group, kind), compacted to the latest."""
    check_key_parts(group, kind)
    return CONTROL_KEY_PREFIX + _utf8(f"relist\x00{group}\x00{kind}")


@functools.lru_cache(maxsize=16_384)
def is_cluster_name(cluster: str) -> bool:
    # Memoized: the consumer checks it for every record, and names repeat.
    return _CLUSTER_NAME.fullmatch(cluster) is not None  # fullmatch: "$" would allow "a\n"


def validate_cluster_name(cluster: str) -> str:
    """Cluster names are DNS labels: they become topic names and ACL resources."""
    if not is_cluster_name(cluster):
        raise DeltaFormatError(
            f"cluster name {cluster!r} must be a DNS label: lowercase letters, digits and '-',"
            " 1-63 characters, starting and ending with a letter or digit"
        )
    return cluster


def topic_for(cluster: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """One topic per cluster, so Kafka ACLs (per topic) can confine a cluster's credentials."""
    if not _TOPIC_PREFIX.fullmatch(prefix):
        raise DeltaFormatError(f"topic prefix {prefix!r} is not a valid Kafka topic prefix")
    return f"{prefix}.{validate_cluster_name(cluster)}"


def cluster_from_topic(topic: str, prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Inverse of :func:`topic_for`; raises DeltaFormatError for topics that are not ours."""
    head = prefix + "."
    if not topic.startswith(head):
        raise DeltaFormatError(f"topic {topic!r} does not start with {head!r}")
    return validate_cluster_name(topic[len(head) :])


def topic_pattern(prefix: str = DEFAULT_TOPIC_PREFIX) -> str:
    """Regex that matches every cluster topic under ``prefix`` (for pattern subscription)."""
    return "^" + re.escape(prefix + ".") + r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"

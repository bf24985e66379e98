"""The delta wire format shared by producers and consumers. Pure code: no I/O."""

from deltas.codec import (
    DEFAULT_MAX_BODY,
    FORMAT_VERSION,
    Header,
    decode,
    decode_header,
    decode_object,
    encode,
    encode_object,
)
from deltas.digest import RunningDigest, item_hash, partition_for
from deltas.errors import ConfigError, DeltaFormatError, KubedeltaError, TransientError
from deltas.keys import (
    DEAD_LETTER_TOPIC,
    DEFAULT_TOPIC_PREFIX,
    ResourceKey,
    cluster_from_topic,
    identity_bytes,
    parse_identity,
    topic_for,
    topic_pattern,
)
from deltas.model import BodyEncoding, Delta, DigestMarker, Op, RelistMarker

__all__ = [
    "DEAD_LETTER_TOPIC",
    "DEFAULT_MAX_BODY",
    "DEFAULT_TOPIC_PREFIX",
    "FORMAT_VERSION",
    "BodyEncoding",
    "ConfigError",
    "Delta",
    "DeltaFormatError",
    "DigestMarker",
    "Header",
    "KubedeltaError",
    "Op",
    "RelistMarker",
    "ResourceKey",
    "RunningDigest",
    "TransientError",
    "cluster_from_topic",
    "decode",
    "decode_header",
    "decode_object",
    "encode",
    "encode_object",
    "identity_bytes",
    "item_hash",
    "parse_identity",
    "partition_for",
    "topic_for",
    "topic_pattern",
]

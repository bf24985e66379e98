"""Opaque resourceVersion strings.

The real API server's resourceVersions happen to be decimal etcd revisions,
but clients must treat them as opaque. The simulator encodes its per-cluster
counter as ``"s"`` + unpadded lowercase base32 of the 8-byte big-endian value,
so a client that parses them as numbers, or orders them as strings, breaks
here instead of in production. Only the simulator decodes them.
"""

from __future__ import annotations

import base64
import binascii

from simulator.errors import BadRequestError

_PREFIX = "s"
_ENCODED_LEN = 13  # 8 bytes -> 13 base32 characters without padding


def encode_rv(counter: int) -> str:
    """The resourceVersion string of counter value ``counter`` (>= 0)."""
    raw = base64.b32encode(counter.to_bytes(8, "big")).decode("ascii")
    return _PREFIX + raw.rstrip("=").lower()


def decode_rv(text: str) -> int:
    """Inverse of :func:`encode_rv`; BadRequestError for anything it did not produce."""
    if len(text) != 1 + _ENCODED_LEN or not text.startswith(_PREFIX):
        raise BadRequestError(f"invalid resource version {text!r}")
    try:
        raw = base64.b32decode(text[1:].upper() + "===")
    except (binascii.Error, ValueError) as exc:
        raise BadRequestError(f"invalid resource version {text!r}") from exc
    return int.from_bytes(raw, "big")

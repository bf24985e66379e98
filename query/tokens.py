"""Opaque, encrypted and signed continue tokens for paginated LISTs. Pure code.

A token carries where the next page starts (the store's cursor) and a
fingerprint of the query that issued it, HMAC-signed with the service's secret.
Anything forged, garbled, or replayed against a different query is a
QueryError (HTTP 400) rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

import msgpack

from query.errors import QueryError

_VERSION = 1
_MAC_BYTES = 16  #: truncated HMAC-SHA256: 128 bits is plenty against forgery
_NONCE_BYTES = 12  #: random per token, so equal cursors give unrelated tokens
#: Longest token accepted; real ones are ~100-300 characters.
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True, slots=True)
class PageState:
    """What a continue token resumes."""

    fingerprint: bytes  #: query_fingerprint() of the query that issued the token
    position: bytes  #: opaque store cursor: the next page starts after it
    at_ms: int | None  #: the point in time a historical LIST is pinned to (None = live)


def query_fingerprint(*parts: object) -> bytes:
    """Stable 16-byte digest of a query's normalized filters."""
    packed = msgpack.packb([str(p) for p in parts], use_bin_type=True)
    return hashlib.blake2b(packed, digest_size=16).digest()


def _keystream(key: bytes, nonce: bytes, size: int) -> bytes:
    """HMAC-SHA256 in counter mode: a PRF keystream for XOR encryption."""
    blocks = []
    for counter in range((size + 31) // 32):
        blocks.append(hmac.new(key, nonce + counter.to_bytes(4, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:size]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


@dataclass(frozen=True, slots=True)
class TokenSigner:
    """Issues and checks continue tokens with one secret.

    Tokens are encrypted, then MACed: the store cursor inside is the key of the last
    object *examined*, which may be one the caller may not see, so it must not be
    readable. Layout: base64url(mac16 | nonce12 | ciphertext).
    """

    secret: bytes  #: master key; tokens survive a restart only if the secret does

    def _key(self, purpose: bytes) -> bytes:
        return hmac.new(self.secret, purpose, hashlib.sha256).digest()

    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self._key(b"mac"), data, hashlib.sha256).digest()[:_MAC_BYTES]

    def issue(self, state: PageState) -> str:
        payload = msgpack.packb(
            [_VERSION, state.fingerprint, state.position, state.at_ms], use_bin_type=True
        )
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + _xor(payload, _keystream(self._key(b"enc"), nonce, len(payload)))
        raw = self._mac(sealed) + sealed
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def check(self, token: str, fingerprint: bytes) -> PageState:
        """Decode ``token`` and require it to belong to the query with ``fingerprint``."""
        if len(token) > MAX_TOKEN_CHARS:
            raise QueryError("continue token is too long: pass back the one a LIST returned")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError) as exc:
            raise QueryError("continue token is not valid: it is not base64url") from exc
        mac, sealed = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        if (
            len(mac) != _MAC_BYTES
            or len(sealed) <= _NONCE_BYTES
            or not hmac.compare_digest(mac, self._mac(sealed))
        ):
            raise QueryError(
                "continue token is not valid: its signature does not match (garbled, forged, or"
                " issued by a server with another secret); restart the LIST without it"
            )
        nonce, cipher = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        payload = _xor(cipher, _keystream(self._key(b"enc"), nonce, len(cipher)))
        try:
            version, issued_for, position, at_ms = msgpack.unpackb(payload, raw=False)
        except Exception as exc:  # authentic, so this means a different token version
            raise QueryError("continue token is not valid: unknown layout") from exc
        if version != _VERSION or not isinstance(position, bytes):
            raise QueryError("continue token is not valid: unknown layout")
        if issued_for != fingerprint:
            raise QueryError(
                "continue token belongs to a different query: repeat the same filters"
                " (clusters, group, kind, namespace, labelSelector, namePrefix, at) as the"
                " request that returned it"
            )
        return PageState(fingerprint, position, at_ms if isinstance(at_ms, int) else None)

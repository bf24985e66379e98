"""Continue tokens: round trip, and every kind of tampering is a QueryError."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from query.errors import QueryError
from query.tokens import PageState, TokenSigner, query_fingerprint

SIGNER = TokenSigner(b"k" * 32)
FP = query_fingerprint("c1", "apps", "Deployment", "", "app=web")


@given(position=st.binary(max_size=300), at_ms=st.none() | st.integers(0, 2**62))
def test_round_trip(position: bytes, at_ms: int | None) -> None:
    state = PageState(FP, position, at_ms)
    assert SIGNER.check(SIGNER.issue(state), FP) == state


def test_other_query_is_refused() -> None:
    token = SIGNER.issue(PageState(FP, b"x", None))
    with pytest.raises(QueryError, match="different query"):
        SIGNER.check(token, query_fingerprint("c2"))


def test_other_secret_is_refused() -> None:
    token = TokenSigner(b"other").issue(PageState(FP, b"x", None))
    with pytest.raises(QueryError, match="signature"):
        SIGNER.check(token, FP)


@given(garbage=st.text(max_size=200))
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(QueryError):
        SIGNER.check(garbage, FP)


def test_flipped_bit_is_refused() -> None:
    token = SIGNER.issue(PageState(FP, b"cursor", None))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[-1] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(QueryError):
        SIGNER.check(forged, FP)


def test_cursor_is_not_readable() -> None:
    secret_key = b"team-b\x00secret-object-name"
    token = SIGNER.issue(PageState(FP, secret_key, None))
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b"secret-object-name" not in raw
    assert SIGNER.issue(PageState(FP, secret_key, None)) != token  # fresh nonce each time

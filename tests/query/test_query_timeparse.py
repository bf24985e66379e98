"""The ``at`` parameter."""

from __future__ import annotations

import pytest

from query.errors import QueryError
from query.timeparse import parse_at

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1699999999000", 1_699_999_999_000),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T22:13:20+00:00", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14T22:13:20", NOW),  # naive = UTC
        ("2023-11-14T22:13:19.5Z", NOW - 500),
    ],
)
def test_accepted(raw: str, expected: int) -> None:
    assert parse_at(raw, NOW) == expected


@pytest.mark.parametrize(
    "raw", ["", "yesterday", "1700000000", "-5", "1700000000001", "2023-13-01T00:00:00Z", "9" * 20]
)
def test_refused(raw: str) -> None:
    with pytest.raises(QueryError):
        parse_at(raw, NOW)

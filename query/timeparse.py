"""Parse the ``at`` parameter of point-in-time reads. Pure code."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from query.errors import QueryError

_DIGITS = re.compile(r"^[0-9]{1,16}$")
#: 2000-01-01T00:00:00Z in Unix ms: anything earlier is surely seconds or a typo.
_EARLIEST_MS = 946_684_800_000


def parse_at(raw: str, now_ms: int) -> int:
    """``at`` as Unix milliseconds: digits are Unix ms, anything else ISO-8601.

    ISO-8601 without a UTC offset is taken as UTC. Timestamps before 2000 or after
    ``now_ms`` are refused: the first are almost always seconds passed as ms, the
    second ask about a state the view cannot know yet.
    """
    text = raw.strip()
    if _DIGITS.match(text):
        at_ms = int(text)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError as exc:
            raise QueryError(
                f"at={raw!r} is neither Unix milliseconds nor an ISO-8601 timestamp"
                " (e.g. 2024-05-01T12:00:00Z)"
            ) from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        at_ms = int(when.timestamp() * 1000)
    if at_ms < _EARLIEST_MS:
        raise QueryError(f"at={raw!r} is before the year 2000: pass Unix milliseconds, not seconds")
    if at_ms > now_ms:
        raise QueryError(f"at={raw!r} is in the future; the view only knows the past")
    return at_ms

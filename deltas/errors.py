"""The project's one exception root.

Retry policy is data on the class (the ``retriable`` flag, as in aiokafka):
loops decide whether to back off and try again by reading it, never by
matching message strings. Library errors are chained as ``__cause__``.
"""

from __future__ import annotations

from typing import ClassVar


class KubedeltaError(Exception):
    """Root of every error kubedelta raises on purpose."""

    retriable: ClassVar[bool] = False


class DeltaFormatError(KubedeltaError, ValueError):
    """Bytes that are not a valid delta record, or a delta that cannot be encoded."""


class ConfigError(KubedeltaError, ValueError):
    """A setting or argument that kubedelta cannot run with."""


class TransientError(KubedeltaError):
    """Something that may succeed when tried again (network, broker, API server)."""

    retriable = True

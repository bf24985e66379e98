"""Errors of the shared I/O plumbing."""

from __future__ import annotations

from deltas.errors import KubedeltaError, TransientError


class KafkaUnavailableError(TransientError):
    """The broker could not be reached or did not answer in time; try again later."""


class KafkaAdminError(KubedeltaError):
    """A topic or ACL operation was refused for a reason retrying will not fix."""

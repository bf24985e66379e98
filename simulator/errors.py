"""Errors of the Kubernetes API simulator.

Each one maps to the HTTP status the real API server would answer with
(``http_status``/``reason``), so the HTTP layer turns them into ``Status``
objects without string matching.
"""

from __future__ import annotations

from typing import ClassVar

from deltas.errors import KubedeltaError


class SimulatorError(KubedeltaError):
    """Root of the simulator's errors."""

    http_status: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"


class UnknownClusterError(SimulatorError, KeyError):
    """No simulated cluster has this name."""

    http_status = 404
    reason = "NotFound"

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownKindError(SimulatorError, LookupError):
    """The cluster does not serve this group/kind (or resource plural)."""

    http_status = 404
    reason = "NotFound"


class ObjectNotFoundError(SimulatorError, LookupError):
    """The object does not exist."""

    http_status = 404
    reason = "NotFound"


class AlreadyExistsError(SimulatorError):
    """An object with this name already exists."""

    http_status = 409
    reason = "AlreadyExists"


class ConflictError(SimulatorError):
    """An update whose metadata.resourceVersion is not the stored one (optimistic locking)."""

    http_status = 409
    reason = "Conflict"


class InvalidObjectError(SimulatorError, ValueError):
    """An object the API server would reject (missing name, wrong scope...)."""

    http_status = 422
    reason = "Invalid"


class BadRequestError(SimulatorError, ValueError):
    """A malformed request parameter (selector, resourceVersion, continue token)."""

    http_status = 400
    reason = "BadRequest"


class ResourceExpiredError(SimulatorError):
    """The requested resourceVersion or continue token is older than the kept history."""

    http_status = 410
    reason = "Expired"


class ResourceVersionTooLargeError(SimulatorError):
    """A resourceVersion newer than anything the cluster has produced."""

    http_status = 504
    reason = "Timeout"

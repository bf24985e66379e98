"""Errors of the producer. Retry policy is the ``retriable`` flag on the class."""

from __future__ import annotations

from deltas.errors import KubedeltaError, TransientError


class ProducerError(KubedeltaError):
    """Root of the producer's own errors."""


class ApiError(ProducerError):
    """The Kubernetes API server answered with an error status."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status  #: HTTP status (0 when the request never got an answer)


class ResourceGoneError(ApiError):
    """410 Gone / "too old resource version": the resume point is lost, relist."""


class ApiThrottledError(ApiError, TransientError):
    """429 Too Many Requests: back off and resume from the same resourceVersion."""

    def __init__(self, message: str, status: int = 429, retry_after_s: float = 0.0) -> None:
        super().__init__(message, status)
        self.retry_after_s = retry_after_s  #: the server's Retry-After hint, 0 if absent


class ApiUnavailableError(ApiError, TransientError):
    """5xx, a dropped or silent connection, a timeout: back off and resume."""


class ApiConfigError(ProducerError):
    """The way to reach the API server is unusable: no in-cluster ServiceAccount (token,
    CA, KUBERNETES_SERVICE_HOST/PORT), or a kubeconfig that cannot be loaded. Not
    retried: it needs a human (or a correct mount)."""


class ApiRejectedError(ApiError):
    """4xx other than 410/429 (401, 403, 404, ...): retried slowly, it needs a human or
    a discovery refresh (a removed kind answers 404 until discovery stops its watch)."""

    retriable = True


class RecordRejectedError(ProducerError):
    """Kafka refused one record for a reason resending will not fix (e.g. too large)."""

"""Errors of the query service. Each carries the HTTP status it maps to, as data."""

from __future__ import annotations

from typing import ClassVar

from deltas.errors import ConfigError, KubedeltaError


class QueryError(KubedeltaError, ValueError):
    """The request is malformed: bad selector, parameter, token, timestamp, limit..."""

    http_status: ClassVar[int] = 400


class HistoryUnavailableError(QueryError):
    """A point-in-time read or feed resume asks for history the view no longer keeps."""

    http_status = 410


class NotFoundError(KubedeltaError):
    """No such object, or one the caller may not see (the body is the same for both)."""

    http_status: ClassVar[int] = 404


class UnauthorizedError(KubedeltaError):
    """No bearer token, or one the token file does not list."""

    http_status: ClassVar[int] = 401


class TokenFileError(ConfigError):
    """The tokens file cannot be read or does not have the documented shape."""

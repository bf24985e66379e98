"""Errors of the benchmark scenarios."""

from __future__ import annotations

from deltas.errors import KubedeltaError


class BenchError(KubedeltaError):
    """A benchmark could not run or could not measure what it promised."""

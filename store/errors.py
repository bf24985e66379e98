"""Errors of the RocksDB view."""

from __future__ import annotations

from deltas.errors import KubedeltaError


class StoreError(KubedeltaError):
    """The store cannot be opened, read or written (I/O, corruption, misuse)."""


class StoreLockedError(StoreError):
    """Another process holds the store's writer lock (RocksDB ``LOCK`` file).

    Retriable: during a rolling restart the previous writer is usually still
    shutting down and releases the lock within seconds.
    """

    retriable = True


class StalePlanError(StoreError):
    """A plan was committed after another commit changed the view it was planned on.

    Plans are computed against the view's state at ``plan()`` time; the caller
    must commit each plan before planning the next batch.
    """

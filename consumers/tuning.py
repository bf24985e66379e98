"""Process-wide tuning for a consumer process. Call from the composition root only."""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

from plumbing.gctune import freeze_heap, raise_gc_thresholds


def tune_gc() -> None:
    """A pass allocates several objects per record (the SourceRecord, the decoded
    header and its key) that live until the batch is committed, then die
    by reference counting: they form no cycles. With the default gen-0 threshold (700)
    the cyclic GC runs every few records and promotes whole batches into the older
    generations, which it then rescans. Raising the thresholds makes it run rarely;
    freezing moves the startup heap (modules, clients) out of its reach."""
    freeze_heap()
    raise_gc_thresholds()


def malloc_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``: give the free pages of the C heap back to the OS.
    None where there is no glibc (the consumer then simply does not trim)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)

"""Process-wide settings of CPython's cyclic garbage collector, for long-running
services that hold a large heap. Call from a composition root only (``kubedelta/``).

With the default thresholds (700, 10, 10) a full collection runs whenever the objects
promoted since the last one reach a quarter of the old generation, and it rescans every
tracked object of the heap: measured under 10,000 changes/s (docs/benchmarks.md), the
query service paused 70-100 ms every ~5 s and the simulator 190 ms on average (12 in
a minute) -- pauses that stall every request, watch stream or feed client of the
process while they run. Almost everything these processes allocate dies by reference
counting (no cycles), so the collector can run rarely.
"""

from __future__ import annotations

import asyncio
import gc

#: Young-generation collections every 50,000 net allocations instead of 700; a full
#: collection is considered only every 50,000 x 20 x 100 = 100M allocations.
SERVICE_GC_THRESHOLDS = (50_000, 20, 100)


def raise_gc_thresholds() -> None:
    """Make the cyclic GC run rarely (see the module docstring)."""
    gc.set_threshold(*SERVICE_GC_THRESHOLDS)


def freeze_heap() -> None:
    """Collect once, then move everything alive (modules, clients, a loaded state) to
    the permanent generation: no later collection rescans it."""
    gc.collect()
    gc.freeze()


async def keep_freezing(interval_s: float) -> None:
    """Freeze the heap every ``interval_s`` seconds, forever (run it as a task): for a
    process whose long-lived heap keeps growing (a simulated API server's objects and
    watch history), so a full collection only ever rescans what arrived since the last
    freeze. ``gc.freeze`` moves lists, it does not collect: cyclic garbage alive at that
    instant is never reclaimed, so only for processes that make little of it."""
    while True:
        await asyncio.sleep(interval_s)
        gc.freeze()

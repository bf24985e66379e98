"""Process-wide tuning for a consumer process. Call from the composition root only."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """A pass allocates several objects per record (aiokafka's ConsumerRecord, our
    SourceRecord, the decoded header) that live until the batch is committed, then die
    by reference counting: they form no cycles. With the default gen-0 threshold (700)
    the cyclic GC runs every few records and promotes whole batches into the older
    generations, which it then rescans. Raising the thresholds makes it run rarely;
    freezing moves the startup heap (modules, clients) out of its reach."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)

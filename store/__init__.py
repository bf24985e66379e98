"""The RocksDB view: latest object per key, indexes, history, change feed and
per-cluster metadata, with Kafka offsets committed in the same WriteBatch as the data.

See docs/store.md for the layout, the tuned options and the measured numbers.
"""

from store.apply import ApplyPlan
from store.errors import StalePlanError, StoreError, StoreLockedError
from store.options import StoreOptions
from store.reads import CONTENT_CFS, ViewReads
from store.records import DigestVerdict, Rejected, SourceRecord
from store.values import (
    ApplyResult,
    Change,
    ClusterStatus,
    Item,
    Page,
    PartitionStatus,
    StoredObject,
)
from store.view import View, ViewReader

__all__ = [
    "CONTENT_CFS",
    "ApplyPlan",
    "ApplyResult",
    "Change",
    "ClusterStatus",
    "DigestVerdict",
    "Item",
    "Page",
    "PartitionStatus",
    "Rejected",
    "SourceRecord",
    "StalePlanError",
    "StoreError",
    "StoreLockedError",
    "StoreOptions",
    "StoredObject",
    "View",
    "ViewReader",
    "ViewReads",
]

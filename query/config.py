"""Settings of the query service, built by ``kubedelta serve`` and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deltas.errors import ConfigError
from query.params import Limits
from store import StoreOptions

#: QueryConfig.catch_up_interval_s, also ``kubedelta serve --catch-up-interval``'s default.
DEFAULT_CATCH_UP_INTERVAL_S = 0.05


@dataclass(frozen=True, slots=True)
class QueryConfig:
    """Everything the service needs besides its tokens."""

    store_path: Path  #: the consumer's RocksDB directory (this process opens it read-only)
    secondary_path: Path  #: this process's own secondary-instance directory (RocksDB needs one)
    #: HMAC key of continue tokens. Tokens survive a restart only if the key does, so
    #: ``kubedelta serve`` keeps it in a file beside the secondary directory.
    continue_secret: bytes = field(repr=False)
    store_options: StoreOptions = field(default_factory=StoreOptions)
    #: Seconds between catch-ups with the writer: the staleness floor of every answer and
    #: of change-feed delivery. 50 ms: an idle catch-up costs ~0.7 ms of CPU (1.9 % of
    #: a core at this rate, 1.2 % at 100 ms), and it halves the wait that dominates the
    #: latency at low change rates (e2e p50 54-60 -> 36-40 ms, docs/benchmarks.md).
    catch_up_interval_s: float = DEFAULT_CATCH_UP_INTERVAL_S
    #: Also catch up as soon as the writer appends to its WAL or MANIFEST (Linux
    #: inotify on the store directory; elsewhere only the interval above applies): a
    #: change is then visible about when it is committed, not up to an interval later.
    catch_up_on_write: bool = True
    #: Shortest time between two catch-ups, seconds: a writer committing hundreds of
    #: small batches a second costs at most 1 / this catch-ups (~0.7 ms each when idle).
    min_catch_up_gap_s: float = 0.01
    #: A request that finds the last catch-up older than this catches up first, seconds.
    max_staleness_s: float = 0.25
    limits: Limits = field(default_factory=Limits)
    #: Objects a LIST page may examine (post-filters: scope, selector, prefix) before it
    #: returns a short page with a continue token, so no request runs unbounded.
    max_scan_per_page: int = 200_000
    #: Changes read from the store per feed pump step.
    feed_batch: int = 2_000
    #: Seconds between SSE comment lines on an idle feed (keeps proxies from closing it).
    feed_heartbeat_s: float = 15.0
    #: Undelivered changes buffered per feed client; a client slower than that is
    #: disconnected and resumes from its last event id (never silently skipped).
    feed_queue_max: int = 50_000

    def __post_init__(self) -> None:
        if len(self.continue_secret) < 16:
            raise ConfigError("continue_secret must be at least 16 bytes")
        if self.catch_up_interval_s <= 0 or self.max_staleness_s <= 0:
            raise ConfigError("catch_up_interval_s and max_staleness_s must be > 0")
        if not 0 <= self.min_catch_up_gap_s <= self.catch_up_interval_s:
            raise ConfigError("min_catch_up_gap_s must be between 0 and catch_up_interval_s")
        if self.max_scan_per_page < 1 or self.feed_batch < 1 or self.feed_queue_max < 1:
            raise ConfigError("max_scan_per_page, feed_batch and feed_queue_max must be >= 1")

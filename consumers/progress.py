"""Pure bookkeeping of how far the view is: lag per cluster and the catch-up target."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

Partition = tuple[str, int]


class CatchUp:
    """Ready once every partition's stored next offset reached the end offset seen at start.

    The target is a snapshot: records produced after it do not delay readiness, and
    once ready the consumer stays ready (lag is what reports falling behind later).
    """

    def __init__(self) -> None:
        self._targets: dict[Partition, int] | None = None
        self._ready = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def has_targets(self) -> bool:
        return self._targets is not None

    def set_targets(self, end_offsets: Mapping[Partition, int]) -> None:
        if self._targets is None:
            self._targets = {p: o for p, o in end_offsets.items() if o > 0}

    def keep_only(self, owned: Iterable[Partition]) -> None:
        """Shard mode: partitions handed to another member are no longer ours to wait for."""
        if self._targets is not None:
            keep = set(owned)
            self._targets = {p: o for p, o in self._targets.items() if p in keep}

    def remaining(self, stored: Mapping[Partition, int]) -> int:
        """Records between the stored offsets and the targets (0 once ready or unknown)."""
        if self._ready or self._targets is None:
            return 0
        return sum(max(0, end - stored.get(p, 0)) for p, end in self._targets.items())

    def update(self, stored: Mapping[Partition, int]) -> bool:
        if not self._ready and self._targets is not None:
            self._ready = all(stored.get(p, 0) >= end for p, end in self._targets.items())
        return self._ready


def lag_by_cluster(
    highwaters: Mapping[Partition, int | None],
    stored: Mapping[Partition, int],
    cluster_of: Callable[[str], str],
) -> dict[str, int]:
    """Records not yet in the view per cluster; partitions with no known high watermark
    count as 0 (nothing fetched yet says nothing about the lag)."""
    out: dict[str, int] = {}
    for (topic, partition), high in highwaters.items():
        cluster = cluster_of(topic)
        lag = max(0, high - stored.get((topic, partition), 0)) if high is not None else 0
        out[cluster] = out.get(cluster, 0) + lag
    return out


def wants_bulk(
    *,
    bulk: bool,
    became_ready: bool,
    ready: bool,
    remaining: int,
    behind: int,
    catch_up_records: int,
    behind_records: int,
) -> bool:
    """Whether the view should commit without the WAL from now on.

    ``remaining``: records left of the first catch-up; ``behind``: records between the
    stored offsets and the latest high watermarks. The first catch-up runs in bulk from
    ``catch_up_records`` on, and readiness always ends it (ready implies readers see
    the data). Later, a consumer ``behind_records`` or more behind goes bulk until it is
    back within a tenth of that (hysteresis: each switch flushes and reopens the store).
    """
    if became_ready:
        return False
    if not ready:
        return bulk or 0 < catch_up_records <= remaining
    if behind_records <= 0:
        return False
    if bulk:
        return behind >= max(1, behind_records // 10)  # a tiny threshold still ends
    return behind >= behind_records

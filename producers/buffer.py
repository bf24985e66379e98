"""The bounded buffer of records not yet acknowledged by Kafka. Pure code.

One FIFO per partition; the head of a FIFO may be "in flight" (handed to Kafka,
not yet acknowledged). On failure the in-flight records go back to waiting and
are sent again in the same order, so nothing is lost and order per key holds.
The bound is soft by one event: producers ask ``has_room`` before adding, and
wait (backpressure) while it is False.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from deltas.errors import ConfigError
from producers.records import OutRecord


@dataclass(frozen=True, slots=True)
class BufferLimits:
    max_records: int  #: records waiting or in flight
    max_bytes: int  #: their encoded size

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_bytes < 1:
            raise ConfigError("buffer limits must be >= 1")


class PendingBuffer:
    def __init__(self, partitions: int, limits: BufferLimits) -> None:
        self.limits = limits
        self._queues: list[deque[OutRecord]] = [deque() for _ in range(partitions)]
        self._in_flight = [0] * partitions
        self.records = 0
        self.bytes = 0

    @property
    def partitions(self) -> int:
        return len(self._queues)

    def has_room(self) -> bool:
        return self.records < self.limits.max_records and self.bytes < self.limits.max_bytes

    def push(self, record: OutRecord) -> None:
        self._queues[record.partition].append(record)
        self.records += 1
        self.bytes += record.size

    def waiting(self, partition: int) -> int:
        """Records of ``partition`` not yet handed to Kafka."""
        return len(self._queues[partition]) - self._in_flight[partition]

    def waiting_bytes_at_least(self, partition: int, threshold: int) -> bool:
        """True when the waiting records of ``partition`` fill at least ``threshold`` bytes."""
        total = 0
        queue = self._queues[partition]
        for i in range(self._in_flight[partition], len(queue)):
            total += queue[i].size
            if total >= threshold:
                return True
        return False

    def oldest_waiting_observed(self, partition: int) -> float | None:
        """``observed`` (monotonic s) of the first record of ``partition`` not yet handed
        to Kafka, None if none waits."""
        queue = self._queues[partition]
        first = self._in_flight[partition]
        return queue[first].observed if first < len(queue) else None

    def take(self, partition: int, max_bytes: int) -> list[OutRecord]:
        """Mark the next records (at least one, about ``max_bytes``) in flight and return them.
        At most one batch per partition is in flight: call only when none is."""
        if self._in_flight[partition]:
            raise RuntimeError(f"partition {partition} already has a batch in flight")
        queue = self._queues[partition]
        out: list[OutRecord] = []
        total = 0
        for record in queue:
            if out and total + record.size > max_bytes:
                break
            out.append(record)
            total += record.size
        self._in_flight[partition] = len(out)
        return out

    def acknowledge(self, partition: int, count: int) -> list[OutRecord]:
        """The first ``count`` in-flight records are stored by Kafka: forget them.
        Any in-flight rest goes back to waiting (a batch may be split when it is sent)."""
        if count > self._in_flight[partition]:
            raise RuntimeError(f"acknowledging {count} of {self._in_flight[partition]} in flight")
        queue = self._queues[partition]
        done = [queue.popleft() for _ in range(count)]
        self._in_flight[partition] = 0
        self.records -= count
        self.bytes -= sum(r.size for r in done)
        return done

    def retry(self, partition: int) -> None:
        """The in-flight batch failed: its records wait again, still first in line."""
        self._in_flight[partition] = 0

    def lowest_pending_seq(self) -> int | None:
        """Smallest seq not yet acknowledged (records are pushed in seq order per
        partition, so the heads are each partition's smallest)."""
        heads = [q[0].seq for q in self._queues if q]
        return min(heads) if heads else None

    def is_empty(self) -> bool:
        return self.records == 0

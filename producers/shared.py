"""What the clusters of one multiplexed producer process share on the Kafka side:
the Kafka producer (per identity) and batched start-up round trips.

At 250 clusters per process, per-cluster start-up calls dominated the initial sync:
each cluster opened an admin client (whose bootstrap and ``list_topics`` fetch the
metadata of every topic on the broker) to create its topic, refreshed the producer's
metadata to learn its partitions, and started a consumer of its own to read its topic
back. Clusters that start together now share one call of each (``Coalescer``).
"""

from __future__ import annotations

from collections.abc import Sequence

from plumbing.kafka import KafkaConnection, TopicSpec, ensure_topics
from producers.coalesce import Coalescer
from producers.ledger import Ledger
from producers.restore import RestoreStats, read_topics
from producers.sink import KafkaTransport

#: Topics per CreateTopics request: keeps one request well inside the broker's timeout.
CREATE_CHUNK = 200


class SharedKafka:
    """One Kafka identity's side of a producer process (one ``KafkaTransport``)."""

    def __init__(
        self, connection: KafkaConnection, transport: KafkaTransport, window_s: float = 0.05
    ) -> None:
        self.connection = connection
        self.transport = transport
        self._topics: Coalescer[TopicSpec, int] = Coalescer(self._prepare_topics, window_s)
        self._restores: Coalescer[tuple[str, Ledger], RestoreStats] = Coalescer(
            self._read_back, window_s
        )

    async def prepare_topic(self, spec: TopicSpec) -> int:
        """Create the topic when absent; return its partition count (from metadata: an
        existing topic keeps its count)."""
        return await self._topics.request(spec)

    async def read_back(self, topic: str, ledger: Ledger) -> RestoreStats:
        """Read ``topic`` from its start into ``ledger`` (see ``producers.restore``)."""
        return await self._restores.request((topic, ledger))

    @property
    def batches(self) -> tuple[int, int]:
        """(topic preparation calls, read-back calls) made so far."""
        return self._topics.batches, self._restores.batches

    async def _prepare_topics(self, specs: list[TopicSpec]) -> Sequence[int]:
        unique = list({s.name: s for s in specs}.values())
        for start in range(0, len(unique), CREATE_CHUNK):
            await ensure_topics(self.connection, unique[start : start + CREATE_CHUNK])
        return await self.transport.partitions_of([s.name for s in specs])

    async def _read_back(self, targets: list[tuple[str, Ledger]]) -> Sequence[RestoreStats]:
        return await read_topics(self.connection, targets)

    async def close(self) -> None:
        await self._topics.close()
        await self._restores.close()

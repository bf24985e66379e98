"""TopicSource against the real broker: what it asks Kafka for, and when."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.protocol.fetch import FetchRequest
from consumer_support import LogBuilder, config, create_topics, produce, unique_prefix

from consumers.source import TopicSource
from deltas import topic_for

pytestmark = pytest.mark.kafka


async def test_the_next_fetch_request_leaves_before_the_records_are_processed(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Once getmany has drained what was prefetched, aiokafka's next fetch request is
    written before ``fetch`` returns: the broker prepares the next records while the
    pass plans and commits (which awaits nothing) instead of after it."""
    prefix = unique_prefix()
    log = LogBuilder(prefix, 1)
    await create_topics(kafka_bootstrap, [topic_for("alpha", prefix)], 1)
    await produce(kafka_bootstrap, [log.upsert("alpha", i) for i in range(50)])
    source = TopicSource(config(tmp_path, kafka_bootstrap, prefix), dict, lambda _: None)
    await source.start()
    try:
        consumer = source.consumer
        fetches_sent = 0
        at_drain: list[int] = []
        send, getmany = consumer._client.send, consumer.getmany

        async def counting_send(node_id: int, request: Any, **kwargs: Any) -> Any:
            nonlocal fetches_sent
            if isinstance(request, FetchRequest):
                fetches_sent += 1
            return await send(node_id, request, **kwargs)

        async def noting_getmany(*args: Any, **kwargs: Any) -> Any:
            batches = await getmany(*args, **kwargs)
            if batches:
                at_drain.append(fetches_sent)
            return batches

        consumer._client.send = counting_send
        consumer.getmany = noting_getmany
        records = []
        for _ in range(50):
            records = await source.fetch()
            if records:
                break
        assert len(records) == 50
        assert fetches_sent > at_drain[-1]  # the next request is already out
    finally:
        await source.stop()

"""Incremental fetch sessions: the session arithmetic (pure) and aiokafka reading
through them from the real broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.fetch import FetchRequest, FetchRequest_v4, FetchRequest_v11
from consumer_support import Out, create_topics, produce, unique_prefix

from consumers.errors import ConsumerError
from consumers.fetch_sessions import (
    INITIAL_EPOCH,
    MAX_REFUSALS,
    FetchSession,
    SessionClient,
    SessionCounts,
    SessionFetchRequest,
    use_fetch_sessions,
)
from consumers.metrics import ConsumerMetrics

A0, A1, B0 = ("a", 0), ("a", 1), ("b", 0)


# -- the session arithmetic ----------------------------------------------------------------


def test_the_first_request_is_full_and_creates_the_session() -> None:
    session = FetchSession()
    request = session.plan({A0: (5, 100), A1: (7, 100)})
    assert (request.session_id, request.epoch, request.full) == (0, INITIAL_EPOCH, True)
    assert request.asks == {A0: (5, 100), A1: (7, 100)} and request.forgotten == ()
    session.answered(0, 77)
    assert (session.session_id, session.epoch) == (77, 1)


def test_later_requests_name_only_what_changed_and_forget_what_left() -> None:
    session = FetchSession()
    session.plan({A0: (5, 100), A1: (7, 100), B0: (0, 100)})
    session.answered(0, 77)
    request = session.plan({A0: (9, 100), B0: (0, 100), ("c", 0): (3, 100)})
    assert (request.session_id, request.epoch, request.full) == (77, 1, False)
    assert request.asks == {A0: (9, 100), ("c", 0): (3, 100)}
    assert request.forgotten == (A1,)
    session.answered(0, 77)
    quiet = session.plan({A0: (9, 100), B0: (0, 100), ("c", 0): (3, 100)})
    assert (quiet.epoch, quiet.asks, quiet.forgotten) == (2, {}, ())
    session.answered(0, 77)
    assert session.epoch == 3
    # a partition whose buffered records were drained comes back at its new offset
    back = session.plan({A0: (9, 100), A1: (12, 100), B0: (0, 100), ("c", 0): (3, 100)})
    assert back.asks == {A1: (12, 100)} and back.forgotten == ()
    assert session.partitions_named == 3 + 2 + 0 + 1


def test_an_error_answer_starts_over_with_a_full_request_closing_the_old_session() -> None:
    session = FetchSession()
    session.plan({A0: (5, 100)})
    session.answered(0, 77)
    session.plan({A0: (6, 100)})
    session.answered(71, 77)  # INVALID_FETCH_SESSION_EPOCH
    request = session.plan({A0: (6, 100)})
    assert (request.session_id, request.epoch) == (77, INITIAL_EPOCH)  # close 77, make anew
    assert request.asks == {A0: (6, 100)}
    assert session.resets == 1
    session.answered(0, 78)
    assert (session.session_id, session.epoch) == (78, 1)


def test_a_broker_that_keeps_refusing_sessions_gets_full_requests_without_one() -> None:
    session = FetchSession()
    session.plan({A0: (5, 100)})
    session.answered(0, 77)
    for _ in range(MAX_REFUSALS - 1):
        session.plan({A0: (5, 100)})
        session.answered(71, 0)
        assert session.enabled
    session.plan({A0: (5, 100)})
    session.answered(0, 78)  # an answer in between: the count starts over
    for _ in range(MAX_REFUSALS):
        session.plan({A0: (5, 100)})
        session.answered(70, 0)
    assert not session.enabled
    request = session.plan({A0: (5, 100)})
    assert (request.session_id, request.epoch, request.asks) == (0, -1, {A0: (5, 100)})


def test_a_broker_that_keeps_no_session_gets_full_requests() -> None:
    session = FetchSession()
    session.plan({A0: (5, 100)})
    session.answered(0, 0)
    request = session.plan({A0: (5, 100)})
    assert (request.session_id, request.epoch, request.asks) == (0, 0, {A0: (5, 100)})


def test_the_epoch_wraps_to_one() -> None:
    session = FetchSession()
    session.plan({A0: (5, 100)})
    session.answered(0, 77)
    session.epoch = 2**31 - 1
    session.plan({A0: (5, 100)})
    session.answered(0, 77)
    assert session.epoch == 1


def test_disabled_every_request_is_full_without_a_session_and_counted() -> None:
    session = FetchSession(enabled=False)
    for offset in (5, 6):
        request = session.plan({A0: (offset, 100), A1: (7, 100)})
        assert (request.session_id, request.epoch, request.full) == (0, -1, True)
        assert request.asks == {A0: (offset, 100), A1: (7, 100)}
        session.answered(0, 0)
    assert (session.full_requests, session.incremental_requests) == (2, 0)
    assert session.partitions_named == 4


def test_an_answer_without_a_request_is_refused() -> None:
    with pytest.raises(ConsumerError):
        FetchSession().answered(0, 1)


def test_the_metrics_follow_the_session_counts_across_a_new_client() -> None:
    metrics = ConsumerMetrics()

    def value(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    metrics.observe_fetch_sessions(SessionCounts(1, 10, 30, 0))
    metrics.observe_fetch_sessions(SessionCounts(2, 15, 45, 1))
    assert value("kubedelta_consumer_fetch_requests_total", kind="full") == 2
    assert value("kubedelta_consumer_fetch_requests_total", kind="incremental") == 15
    assert value("kubedelta_consumer_fetch_partitions_named_total") == 45
    assert value("kubedelta_consumer_fetch_session_resets_total") == 1
    metrics.observe_fetch_sessions(SessionCounts(1, 2, 8, 0))  # restarted client: from 0
    assert value("kubedelta_consumer_fetch_requests_total", kind="full") == 3
    assert value("kubedelta_consumer_fetch_requests_total", kind="incremental") == 17
    assert value("kubedelta_consumer_fetch_partitions_named_total") == 53


def _full_request() -> FetchRequest:
    return FetchRequest(100, 1, 1 << 20, 0, [("a", [(0, 5, 64), (1, 7, 64)]), ("b", [(0, 0, 64)])])


def test_the_session_request_is_built_with_its_fields_and_only_its_partitions() -> None:
    session = FetchSession()
    session.plan({A0: (5, 64), A1: (7, 64), B0: (0, 64)})
    session.answered(0, 77)
    request = SessionFetchRequest(_full_request(), session.plan({A0: (9, 64), B0: (0, 64)}))
    struct = request.build(FetchRequest_v11)
    assert (struct.session_id, struct.session_epoch) == (77, 1)
    assert struct.topics == [("a", [(0, -1, 9, -1, 64)])]
    assert struct.forgotten_topics_data == [("a", [1])]
    assert request.built_version == 11
    # the fetcher checks answers against the full request: that stays what it built
    assert request.topics == _full_request().topics
    FetchRequest_v11.decode(struct.encode())  # well-formed on the wire


def test_below_fetch_v7_the_request_is_the_full_one() -> None:
    session = FetchSession()
    request = SessionFetchRequest(_full_request(), session.plan({A0: (5, 64)}))
    struct = request.build(FetchRequest_v4)
    assert struct.topics == _full_request().build(FetchRequest_v4).topics
    assert request.built_version == 4


# -- against the broker ------------------------------------------------------------------


async def _reader(
    bootstrap: str, topics: list[str], enabled: bool = True
) -> tuple[AIOKafkaConsumer, SessionClient]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    sessions = use_fetch_sessions(consumer, enabled)
    assert use_fetch_sessions(consumer) is sessions  # idempotent
    tps = [TopicPartition(t, p) for t in topics for p in range(2)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer, sessions


async def _read(
    consumer: AIOKafkaConsumer,
    seen: dict[tuple[str, int], list[bytes]],
    count: int,
    pause_s: float = 0.0,
) -> None:
    """getmany in small pieces until ``count`` records in all are in ``seen``. With a
    pause longer than aiokafka's prefetch backoff (0.1 s) between them, partitions
    still buffered are left out of the next request: the session forgets them, then
    names them again once drained."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while sum(map(len, seen.values())) < count:
        assert loop.time() < deadline, f"only {sum(map(len, seen.values()))} of {count}"
        batches = await consumer.getmany(timeout_ms=200, max_records=7)
        for tp, messages in batches.items():
            seen[(tp.topic, tp.partition)].extend(m.value for m in messages)
        await asyncio.sleep(pause_s)


def _records(topics: list[str], start: int, count: int) -> list[Out]:
    return [
        Out(topic, None, f"{topic}:{p}:{i}".encode(), partition=p)
        for i in range(start, start + count)
        for topic in topics
        for p in range(2)
    ]


async def _filled_topics(bootstrap: str, count: int, records: int) -> list[str]:
    """``count`` new topics of 2 partitions, each partition holding ``records`` records."""
    prefix = unique_prefix()
    topics = [f"{prefix}.fs{i}" for i in range(count)]
    await create_topics(bootstrap, topics, 2)
    await produce(bootstrap, _records(topics, 0, records))
    return topics


def _expected(topics: list[str], count: int) -> dict[tuple[str, int], list[bytes]]:
    return {
        (t, p): [f"{t}:{p}:{i}".encode() for i in range(count)] for t in topics for p in range(2)
    }


@pytest.mark.kafka
async def test_every_record_arrives_once_in_order_through_incremental_requests(
    kafka_bootstrap: str,
) -> None:
    topics = await _filled_topics(kafka_bootstrap, 4, 40)
    consumer, sessions = await _reader(kafka_bootstrap, topics)
    try:
        seen: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        await _read(consumer, seen, 40 * 8)
        # more records while reading, a few at a time as quiet clusters send them
        writing = asyncio.ensure_future(
            produce(kafka_bootstrap, _records(topics, 40, 20), chunks=20, pause_s=0.02)
        )
        await _read(consumer, seen, 60 * 8, pause_s=0.12)
        await writing
        (session,) = sessions.sessions.values()
        named, requests = session.partitions_named, session.incremental_requests
        await asyncio.sleep(0.3)  # idle fetches: nothing more may arrive
        assert not await consumer.getmany(timeout_ms=300)
        assert dict(seen) == _expected(topics, 60)
        assert session.session_id != 0 and session.resets == 0 and session.full_requests == 1
        assert session.partitions_forgotten > 0  # buffered partitions left the session
        # partitions the answers leave out have not changed: every high watermark
        # aiokafka holds (the consumer's lag) is the partition's end
        ends = await consumer.end_offsets(list(consumer.assignment()))
        assert {tp: consumer.highwater(tp) for tp in ends} == ends
        # idle requests name nothing (a full one names all 8 partitions every time):
        # at most the partitions drained by the last getmany come back, once
        assert session.incremental_requests >= requests + 3
        assert session.partitions_named <= named + 8
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_a_session_the_broker_refuses_is_made_anew_without_losing_records(
    kafka_bootstrap: str,
) -> None:
    topics = await _filled_topics(kafka_bootstrap, 2, 30)
    consumer, sessions = await _reader(kafka_bootstrap, topics)
    try:
        seen: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        await _read(consumer, seen, 30 * 4)
        (session,) = sessions.sessions.values()
        old_id = session.session_id
        session.epoch += 5  # the broker answers INVALID_FETCH_SESSION_EPOCH
        await produce(kafka_bootstrap, _records(topics, 30, 30))
        await _read(consumer, seen, 60 * 4)
        assert dict(seen) == _expected(topics, 60)
        assert session.resets >= 1 and session.full_requests >= 2
        assert session.session_id not in (0, old_id)
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_a_seek_back_is_named_and_the_records_come_again(kafka_bootstrap: str) -> None:
    topics = await _filled_topics(kafka_bootstrap, 1, 20)
    consumer, sessions = await _reader(kafka_bootstrap, topics)
    try:
        seen: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        await _read(consumer, seen, 40)
        consumer.seek(TopicPartition(topics[0], 1), 10)
        again: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        await _read(consumer, again, 10)
        assert dict(again) == {(topics[0], 1): _expected(topics, 20)[(topics[0], 1)][10:]}
        (session,) = sessions.sessions.values()
        assert session.incremental_requests > 0 and session.resets == 0
    finally:
        await consumer.stop()


@pytest.mark.kafka
async def test_without_sessions_every_request_is_full_and_counted(kafka_bootstrap: str) -> None:
    topics = await _filled_topics(kafka_bootstrap, 2, 20)
    consumer, client = await _reader(kafka_bootstrap, topics, enabled=False)
    try:
        seen: dict[tuple[str, int], list[bytes]] = defaultdict(list)
        await _read(consumer, seen, 20 * 4)
        assert dict(seen) == _expected(topics, 20)
        assert not await consumer.getmany(timeout_ms=300)  # idle long polls of 50 ms
        counts = client.counts()
        assert counts.full_requests > 1 and counts.incremental_requests == 0
        (session,) = client.sessions.values()
        assert session.session_id == 0  # none was asked for
    finally:
        await consumer.stop()


async def test_other_requests_and_attributes_pass_through() -> None:
    class Client:
        cluster = "the cluster"

        async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
            return ("sent", node_id, request, kwargs)

    client = SessionClient(Client())
    assert client.cluster == "the cluster"
    assert await client.send(3, "metadata", group=1) == ("sent", 3, "metadata", {"group": 1})
    assert client.sessions == {}

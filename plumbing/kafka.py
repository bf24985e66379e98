"""Kafka connection settings and topic administration shared by producers and consumers.

Only this module knows how aiokafka is configured for security; producers,
consumers and benchmarks ask it for client keyword arguments.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from plumbing.errors import KafkaAdminError, KafkaUnavailableError

#: Largest record we accept or send: etcd caps objects at ~1.5 MiB, plus the envelope.
MAX_RECORD_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """How to reach the brokers. Secrets come from the edge (settings/env), never defaults."""

    bootstrap_servers: str = "127.0.0.1:9092"  #: comma-separated host:port list
    security_protocol: str = "PLAINTEXT"  #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    sasl_mechanism: str | None = None  #: e.g. SCRAM-SHA-512 (per-cluster identities)
    sasl_username: str | None = None  #: SCRAM principal name
    sasl_password: str | None = field(default=None, repr=False)  #: never logged
    ssl_cafile: str | None = None  #: CA bundle that signed the brokers' certificates
    ssl_certfile: str | None = None  #: client certificate for mTLS
    ssl_keyfile: str | None = None  #: client key for mTLS
    client_id: str = "kubedelta"  #: shows in broker logs and quotas
    request_timeout_ms: int = 30_000  #: per request; long enough for a loaded 2-core broker

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments common to AIOKafkaProducer, AIOKafkaConsumer and the admin client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_context"] = self.ssl_context()
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
        )
        return context


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create when absent."""

    name: str
    partitions: int = 1  #: per-cluster topics: order per key is all we need
    replication: int = 1  #: 3 in production (with min.insync.replicas=2)
    configs: Mapping[str, str] = field(default_factory=dict)  #: topic-level overrides


def admin_client(conn: KafkaConnection) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**conn.client_kwargs())


async def ensure_topics(conn: KafkaConnection, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = admin_client(conn)
    try:
        await admin.start()
    except KafkaConnectionError as exc:
        raise KafkaUnavailableError(f"cannot reach Kafka at {conn.bootstrap_servers}") from exc
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [
            NewTopic(
                name=s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication,
                topic_configs=dict(s.configs),
            )
            for s in missing
        ]
        try:
            response = await admin.create_topics(new)
        except TopicAlreadyExistsError:
            return []
        except KafkaError as exc:
            raise KafkaAdminError(f"creating topics {[s.name for s in missing]} failed") from exc
        created = []
        for name, code, message in _topic_errors(response):
            if code == 0:
                created.append(name)
            elif code != TopicAlreadyExistsError.errno:
                raise KafkaAdminError(f"creating topic {name} failed: error {code} {message}")
        return created
    finally:
        await admin.close()


def _topic_errors(response: Any) -> list[tuple[str, int, str]]:
    """(name, error code, message) per topic from a CreateTopics response of any version."""
    out = []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else ""
        out.append((name, int(code), message or ""))
    return out


# -- offset lookups over many topics ---------------------------------------------------------

#: Partitions per ListOffsets request: one request for thousands of partitions can
#: outlast the request timeout on a loaded broker (seen: 1,000 partitions > 30 s).
OFFSETS_CHUNK = 200


async def track_topics(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> None:
    """Learn the leaders of ``topics`` with one metadata request.

    aiokafka's offset lookups discover an unknown topic one per attempt (one metadata
    refresh plus a ``retry_backoff_ms`` pause each), so asking the offsets of 1,000 fresh
    topics took well over 100 s and timed out. Tracking them all first costs one request.
    """
    client = consumer._client
    known: set[str] = set(client._topics)
    wanted = set(topics)
    if wanted - known:
        await client.set_topics(known | wanted)


async def offsets_in_chunks(
    lookup: Callable[[list[TopicPartition]], Awaitable[Mapping[TopicPartition, Any]]],
    partitions: Sequence[TopicPartition],
    chunk: int = OFFSETS_CHUNK,
) -> dict[TopicPartition, Any]:
    """``lookup`` (end_offsets, beginning_offsets, ...) over ``partitions``, ``chunk`` at
    a time, one request after the other. Call :func:`track_topics` first."""
    found: dict[TopicPartition, Any] = {}
    for start in range(0, len(partitions), chunk):
        found.update(await lookup(list(partitions[start : start + chunk])))
    return found


async def end_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """End offset of every partition: topics tracked in one request, then chunked lookups."""
    await track_topics(consumer, {tp.topic for tp in partitions})
    return await offsets_in_chunks(lambda c: consumer.end_offsets(c), partitions)


async def beginning_offsets(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, int]:
    """First offset of every partition (see :func:`end_offsets`)."""
    await track_topics(consumer, {tp.topic for tp in partitions})
    return await offsets_in_chunks(lambda c: consumer.beginning_offsets(c), partitions)

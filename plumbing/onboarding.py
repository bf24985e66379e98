"""Onboard and offboard identities on a secure broker: topic + SCRAM user + ACLs.

The steps are ordered so that a failure half-way leaves nothing usable:
``add`` creates the topic and the ACLs before the credential (a credential
without ACLs can do nothing), ``remove`` deletes the credential first (so the
principal cannot authenticate any more) and then the ACLs. What to grant is
:mod:`plumbing.identity`'s pure logic; the requests are
:mod:`plumbing.security_admin`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.errors import KafkaError, UnknownTopicOrPartitionError

from deltas.keys import DEAD_LETTER_TOPIC, DEFAULT_TOPIC_PREFIX, topic_for
from plumbing.errors import KafkaAdminError
from plumbing.identity import (
    DEFAULT_GROUP_PREFIX,
    AclBinding,
    cluster_user,
    consumer_acls,
    consumer_user,
    new_password,
    producer_acls,
    scram_credential,
    user,
)
from plumbing.kafka import KafkaConnection, TopicSpec, admin_client, ensure_topics
from plumbing.security_admin import SecurityAdmin


@dataclass(frozen=True, slots=True)
class Granted:
    """What an ``add`` created: the principal's name, its password (shown once) and ACLs."""

    username: str
    password: str
    acls: tuple[AclBinding, ...]
    topics_created: tuple[str, ...]


async def add_cluster(
    admin: KafkaConnection,
    cluster: str,
    topic: TopicSpec | None = None,
    *,
    prefix: str = DEFAULT_TOPIC_PREFIX,
    read_back: bool = True,
    password: str | None = None,
) -> Granted:
    """Create cluster ``cluster``'s topic (``topic`` settings; its name is forced to
    ``<prefix>.<cluster>``), a SCRAM user ``cluster-<cluster>`` and the ACLs that let it
    write only that topic. Re-running rotates the password and keeps the rest."""
    name = topic_for(cluster, prefix)
    spec = (
        TopicSpec(name)
        if topic is None
        else TopicSpec(name, topic.partitions, topic.replication, topic.configs)
    )
    created = await ensure_topics(admin, [spec])
    acls = producer_acls(cluster, prefix=prefix, read_back=read_back)
    username = cluster_user(cluster)
    secret = password or new_password()
    async with SecurityAdmin(admin) as security:
        await security.create_acls(acls)
        await security.upsert_scram(scram_credential(username, secret))
    return Granted(username, secret, acls, tuple(created))


async def remove_cluster(
    admin: KafkaConnection,
    cluster: str,
    *,
    prefix: str = DEFAULT_TOPIC_PREFIX,
    delete_topic: bool = False,
) -> tuple[bool, int]:
    """Revoke cluster ``cluster``: delete its SCRAM credential, then its ACLs, and the topic
    when asked. Returns (had a credential, ACLs deleted)."""
    username = cluster_user(cluster)
    async with SecurityAdmin(admin) as security:
        had = await security.delete_scram(username)
        deleted = await security.delete_acls_of(user(username))
    if delete_topic:
        await _delete_topic(admin, topic_for(cluster, prefix))
    return had, deleted


async def add_consumer(
    admin: KafkaConnection,
    name: str,
    *,
    prefix: str = DEFAULT_TOPIC_PREFIX,
    dead_letter: TopicSpec | None = None,
    group_prefix: str = DEFAULT_GROUP_PREFIX,
    password: str | None = None,
) -> Granted:
    """A read-only consumer principal: read every cluster topic, write dead letters.
    The dead-letter topic is created here, since the consumer may not create topics."""
    spec = dead_letter or TopicSpec(DEAD_LETTER_TOPIC, configs={"cleanup.policy": "delete"})
    created = await ensure_topics(admin, [spec])
    acls = consumer_acls(
        name, prefix=prefix, dead_letter_topic=spec.name, group_prefix=group_prefix
    )
    username = consumer_user(name)
    secret = password or new_password()
    async with SecurityAdmin(admin) as security:
        await security.create_acls(acls)
        await security.upsert_scram(scram_credential(username, secret))
    return Granted(username, secret, acls, tuple(created))


async def remove_consumer(admin: KafkaConnection, name: str) -> tuple[bool, int]:
    """Revoke a consumer identity (credential first, then ACLs)."""
    username = consumer_user(name)
    async with SecurityAdmin(admin) as security:
        had = await security.delete_scram(username)
        deleted = await security.delete_acls_of(user(username))
    return had, deleted


async def _delete_topic(admin: KafkaConnection, topic: str) -> None:
    client = admin_client(admin)
    await client.start()
    try:
        response = await client.delete_topics([topic])
        for entry in response.topic_error_codes:
            name, code = entry[0], entry[1]
            if code not in (0, UnknownTopicOrPartitionError.errno):
                raise KafkaAdminError(f"deleting topic {name} failed: error {code}")
    except KafkaError as exc:
        raise KafkaAdminError(f"deleting topic {topic} failed") from exc
    finally:
        await client.close()

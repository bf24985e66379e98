"""Resource identity, Kafka keys and topic names."""

from __future__ import annotations

import re

import pytest
from delta_strategies import KEY_TEXT
from hypothesis import given, settings
from hypothesis import strategies as st

from deltas import (
    DEAD_LETTER_TOPIC,
    DEFAULT_TOPIC_PREFIX,
    DeltaFormatError,
    ResourceKey,
    cluster_from_topic,
    identity_bytes,
    parse_identity,
    topic_for,
    topic_pattern,
)
from deltas.keys import CONTROL_KEY_PREFIX, DIGEST_KEY, relist_key, validate_cluster_name

CLUSTERS = st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True)
VALID_CLUSTERS = ["a", "0", "prod", "prod-eu-1", "a" * 63, "1-2", "x--y"]
INVALID_CLUSTERS = [
    "",
    "Prod",
    "prod_eu",
    "-a",
    "a-",
    "a.b",
    "a" * 64,
    "ü",
    "a b",
    "a\x00",
    "a\n",
    "\na",
]


@settings(max_examples=200)
@given(KEY_TEXT, KEY_TEXT, KEY_TEXT, KEY_TEXT)
def test_identity_round_trips(group: str, kind: str, namespace: str, name: str) -> None:
    raw = identity_bytes(group, kind, namespace, name)
    assert parse_identity(raw) == (group, kind, namespace, name)
    # 0xFF never starts (or occurs in) UTF-8, so no resource key looks like a control key.
    assert not raw.startswith(CONTROL_KEY_PREFIX)
    assert b"\xff" not in raw


def test_identity_layout() -> None:
    assert (
        identity_bytes("apps", "Deployment", "default", "web")
        == b"apps\x00Deployment\x00default\x00web"
    )
    assert identity_bytes("", "Namespace", "", "kube-system") == b"\x00Namespace\x00\x00kube-system"
    assert identity_bytes("", "Pod", "ns", "名前-🚀") == "\x00Pod\x00ns\x00名前-🚀".encode()


def test_resource_key_identity_ignores_the_version() -> None:
    v1 = ResourceKey("example.com", "v1", "Widget", "ns", "w")
    v2 = ResourceKey("example.com", "v2beta1", "Widget", "ns", "w")
    assert v1.identity_bytes() == v2.identity_bytes() == b"example.com\x00Widget\x00ns\x00w"


def test_api_version() -> None:
    assert ResourceKey("", "v1", "Pod", "ns", "p").api_version == "v1"
    assert ResourceKey("apps", "v1", "Deployment", "ns", "d").api_version == "apps/v1"


@pytest.mark.parametrize("index", range(4))
def test_nul_in_any_identity_part_is_rejected(index: int) -> None:
    parts = ["g", "K", "ns", "n"]
    parts[index] = "bad\x00part"
    with pytest.raises(DeltaFormatError, match=r"key part 'bad\\x00part' contains a NUL character"):
        identity_bytes(*parts)


def test_surrogates_in_identity_are_rejected() -> None:
    with pytest.raises(DeltaFormatError, match="not encodable as UTF-8"):
        identity_bytes("", "Pod", "ns", "\ud83d")


def test_parse_identity_faults() -> None:
    with pytest.raises(DeltaFormatError, match="resource key is not UTF-8"):
        parse_identity(b"\xff\x00a\x00b\x00c")
    with pytest.raises(DeltaFormatError, match="resource key must have 4 parts, got 3"):
        parse_identity(b"a\x00b\x00c")
    with pytest.raises(DeltaFormatError, match="resource key must have 4 parts, got 5"):
        parse_identity(b"a\x00b\x00c\x00d\x00e")


def test_control_keys() -> None:
    assert relist_key("apps", "Deployment") == b"\xffrelist\x00apps\x00Deployment"
    assert relist_key("", "Pod") == b"\xffrelist\x00\x00Pod"
    assert DIGEST_KEY == b"\xffdigest"
    with pytest.raises(DeltaFormatError, match="contains a NUL character"):
        relist_key("a\x00", "Pod")


@pytest.mark.parametrize("cluster", VALID_CLUSTERS)
def test_valid_cluster_names(cluster: str) -> None:
    assert validate_cluster_name(cluster) == cluster


@pytest.mark.parametrize("cluster", INVALID_CLUSTERS)
def test_invalid_cluster_names(cluster: str) -> None:
    with pytest.raises(
        DeltaFormatError, match=f"cluster name {re.escape(repr(cluster))} must be a DNS label"
    ):
        validate_cluster_name(cluster)
    with pytest.raises(DeltaFormatError, match="must be a DNS label"):
        topic_for(cluster)


@settings(max_examples=200)
@given(CLUSTERS)
def test_topic_naming_round_trips(cluster: str) -> None:
    topic = topic_for(cluster)
    assert topic == f"kubedelta.cluster.{cluster}"
    assert cluster_from_topic(topic) == cluster
    assert re.match(topic_pattern(), topic)
    # Kafka topic names: at most 249 characters of [a-zA-Z0-9._-].
    assert len(topic) <= 249 and re.fullmatch(r"[A-Za-z0-9._-]+", topic)


def test_custom_prefix() -> None:
    assert topic_for("a1", prefix="team.x") == "team.x.a1"
    assert cluster_from_topic("team.x.a1", prefix="team.x") == "a1"
    pattern = topic_pattern("team.x")
    assert re.match(pattern, "team.x.a1")
    assert not re.match(pattern, "teamXx.a1"), "dots in the prefix are literal"
    assert not re.match(pattern, "kubedelta.cluster.a1")


@pytest.mark.parametrize("prefix", ["", ".", "a..b", "a.", ".a", "a b", "a/b", "ü", "a\n"])
def test_invalid_topic_prefix(prefix: str) -> None:
    with pytest.raises(DeltaFormatError, match="is not a valid Kafka topic prefix"):
        topic_for("c1", prefix=prefix)


@pytest.mark.parametrize(
    ("topic", "message"),
    [
        (DEAD_LETTER_TOPIC, "does not start with 'kubedelta.cluster.'"),
        ("kubedelta.clusterx", "does not start with"),
        ("other.cluster.a", "does not start with"),
        ("kubedelta.cluster.", "must be a DNS label"),
        ("kubedelta.cluster.A", "must be a DNS label"),
        ("kubedelta.cluster.a.b", "must be a DNS label"),
    ],
)
def test_cluster_from_foreign_topics(topic: str, message: str) -> None:
    with pytest.raises(DeltaFormatError, match=message):
        cluster_from_topic(topic)


@pytest.mark.parametrize("cluster", VALID_CLUSTERS)
def test_topic_pattern_matches_cluster_topics(cluster: str) -> None:
    assert re.match(topic_pattern(), f"kubedelta.cluster.{cluster}")


@pytest.mark.parametrize(
    "topic",
    [
        DEAD_LETTER_TOPIC,
        "kubedelta.cluster",
        "kubedelta.cluster.",
        "kubedelta.clusterXa",
        "kubedelta.cluster.A",
        "kubedelta.cluster.a.b",
        "kubedelta.cluster.a_b",
        "kubedelta.cluster.-a",
        "kubedelta.cluster." + "a" * 64,
        "xkubedelta.cluster.a",
        "__consumer_offsets",
    ],
)
def test_topic_pattern_matches_nothing_else(topic: str) -> None:
    assert not re.match(topic_pattern(), topic)


def test_defaults() -> None:
    assert DEFAULT_TOPIC_PREFIX == "kubedelta.cluster"
    assert DEAD_LETTER_TOPIC == "kubedelta.deadletter"

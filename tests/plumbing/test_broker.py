"""The local broker: config, wire probe, and start/status/stop on real Kafka processes.

Lifecycle tests run a second broker with its own home and ports, so the shared
broker that other tests use is never stopped.
"""

from __future__ import annotations

import os
import socket
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from plumbing import broker
from plumbing.broker import BrokerError, BrokerPortInUseError, LocalBrokerConfig


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def shared_config() -> LocalBrokerConfig:
    return LocalBrokerConfig.from_env(os.environ)


# ------------------------------------------------------------ pure parts


def test_from_env_defaults_and_overrides(tmp_path: Path) -> None:
    default = LocalBrokerConfig.from_env({})
    assert (default.port, default.controller_port) == (9092, 9093)
    assert default.home == broker.PROJECT_ROOT / ".kubedelta" / "kafka"
    assert default.bootstrap == "127.0.0.1:9092"

    custom = LocalBrokerConfig.from_env(
        {"KUBEDELTA_HOME": str(tmp_path), "KUBEDELTA_KAFKA_PORT": "19092"}
    )
    assert custom.home == tmp_path / "kafka"
    assert (custom.port, custom.controller_port) == (19092, 19093)
    assert custom.libs == tmp_path / "kafka" / "libs"


@pytest.mark.parametrize(
    "environ",
    [
        {"KUBEDELTA_KAFKA_PORT": "kafka"},
        {"KUBEDELTA_KAFKA_PORT": "70000"},
        {"KUBEDELTA_KAFKA_PORT": "9000", "KUBEDELTA_KAFKA_CONTROLLER_PORT": "9000"},
    ],
)
def test_bad_ports_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(BrokerError):
        LocalBrokerConfig.from_env(environ)


def test_server_properties_fit_our_traffic(tmp_path: Path) -> None:
    config = LocalBrokerConfig(home=tmp_path, port=19092, controller_port=19093)
    lines = broker.server_properties(config).splitlines()
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    assert settings["process.roles"] == "broker,controller"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert int(settings["message.max.bytes"]) >= 8 * broker.MIB
    assert int(settings["replica.fetch.max.bytes"]) >= 8 * broker.MIB
    assert settings["log.cleaner.enable"] == "true"
    assert settings["offsets.topic.replication.factor"] == "1"
    assert settings["transaction.state.log.min.isr"] == "1"
    assert settings["log.dirs"] == str(tmp_path / "data")


@pytest.mark.parametrize("segment_mib", [1, 64, 1024])
def test_index_files_are_sized_to_a_full_segment_not_kafkas_10_mib(
    tmp_path: Path, segment_mib: int
) -> None:
    """Sparse 10 MiB index files cost the broker most of its CPU in page-fault zeroing at
    1,000 partitions; the size must still hold every entry of a full segment (one per
    4 KiB appended, 12 B in the time index), or segments roll early."""
    config = LocalBrokerConfig(
        home=tmp_path, port=19092, controller_port=19093, segment_bytes=segment_mib * broker.MIB
    )
    lines = broker.server_properties(config).splitlines()
    settings = dict(line.split("=", 1) for line in lines if not line.startswith("#"))
    index_bytes = int(settings["log.index.size.max.bytes"])
    entries_of_a_full_segment = segment_mib * broker.MIB // 4096
    assert index_bytes >= 12 * entries_of_a_full_segment
    assert index_bytes <= max(64 * broker.KIB, 24 * entries_of_a_full_segment)
    if segment_mib == 64:
        assert index_bytes < 1 * broker.MIB  # the default broker: well under Kafka's 10 MiB


def test_cluster_id_is_kraft_shaped() -> None:
    ids = {broker.random_cluster_id() for _ in range(20)}
    assert len(ids) == 20
    assert all(len(cluster_id) == 22 and "=" not in cluster_id for cluster_id in ids)


def test_cluster_id_never_reads_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage takes an id starting with "-" for an option (a CI run failed so, 1 in 64):
    a draw whose first 6 bits are 62 (base64 "-") is drawn again."""
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x04" + bytes(15))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))
    assert broker.random_cluster_id() == "BAAAAAAAAAAAAAAAAAAAAA"


def test_metadata_request_layout() -> None:
    frame = broker.encode_metadata_request(7, client_id="probe")
    (size, api_key, version, correlation, client_len) = struct.unpack_from(">ihhih", frame)
    assert size == len(frame) - 4
    assert (api_key, version, correlation) == (3, 4, 7)
    assert frame[14 : 14 + client_len] == b"probe"
    assert frame[14 + client_len :] == b"\x00\x00\x00\x00\x00"  # no topics, no auto-create


def test_metadata_response_decoding() -> None:
    host = b"127.0.0.1"
    payload = struct.pack(">iii", 7, 0, 2)
    payload += struct.pack(f">ih{len(host)}sih", 1, len(host), host, 9092, -1)
    payload += struct.pack(f">ih{len(host)}sih2s", 2, len(host), host, 9094, 2, b"r1")
    payload += b"trailing cluster id, controller, topics"
    assert broker.decode_metadata_brokers(7, payload) == [
        (1, "127.0.0.1", 9092),
        (2, "127.0.0.1", 9094),
    ]
    with pytest.raises(BrokerError, match="expected 8"):
        broker.decode_metadata_brokers(8, payload)
    with pytest.raises(BrokerError, match="malformed"):
        broker.decode_metadata_brokers(7, payload[:20])


def test_start_refuses_a_port_held_by_another_process(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = LocalBrokerConfig(home=tmp_path, port=port, controller_port=free_port())
        with pytest.raises(BrokerPortInUseError, match="another process"):
            broker.start(config)
    assert not broker.status(config).running


def test_status_of_a_home_that_never_ran(tmp_path: Path) -> None:
    config = LocalBrokerConfig(home=tmp_path, port=free_port(), controller_port=free_port())
    state = broker.status(config)
    assert (state.running, state.pid, state.note) == (False, None, "stopped")
    assert broker.stop(config) is False


# ------------------------------------------------------------ real brokers


@pytest.mark.kafka
def test_start_when_running_is_a_noop(kafka_bootstrap: str) -> None:
    config = shared_config()
    before = broker.status(config)
    assert before.running and before.bootstrap == kafka_bootstrap
    assert broker.start(config) == kafka_bootstrap
    after = broker.status(config)
    assert after.running and after.pid == before.pid
    assert broker.jars_ready(config)
    assert broker.fetch_jars(config) is False  # cached: no Maven run


@pytest.fixture
def second_home(tmp_path: Path, kafka_bootstrap: str) -> Iterator[LocalBrokerConfig]:
    """A second broker home on free ports, sharing the already fetched jars."""
    config = LocalBrokerConfig(
        home=tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
        jars=shared_config().libs,
        heap="256m",
    )
    yield config
    broker.stop(config)


@pytest.mark.kafka
def test_second_broker_lifecycle(second_home: LocalBrokerConfig) -> None:
    config = second_home
    assert broker.start(config) == config.bootstrap
    first = broker.status(config)
    assert first.running and first.pid is not None
    assert broker.answers(config)

    assert broker.start(config) == config.bootstrap  # no-op
    assert broker.status(config).pid == first.pid

    # The same ports from another home: a clear refusal, not a second JVM.
    intruder = LocalBrokerConfig(
        home=config.home.parent / "other",
        port=config.port,
        controller_port=free_port(),
        jars=config.jars,
    )
    with pytest.raises(BrokerPortInUseError, match="Kafka broker from another home"):
        broker.start(intruder)

    assert broker.stop(config) is True
    stopped = broker.status(config)
    assert (stopped.running, stopped.pid) == (False, None)
    assert broker.port_is_free(config.host, config.port)
    assert broker.stop(config) is False  # idempotent

    # Restart reuses the formatted storage.
    assert broker.start(config) == config.bootstrap
    assert broker.status(config).running

    # A test session borrowing a broker it did not start leaves it running.
    with broker.borrowed(config) as bootstrap:
        assert bootstrap == config.bootstrap
    assert broker.status(config).running


@pytest.mark.kafka
def test_borrowing_stops_only_what_it_started(second_home: LocalBrokerConfig) -> None:
    config = second_home
    with broker.borrowed(config) as bootstrap:
        assert bootstrap == config.bootstrap
        assert broker.status(config).running
        assert broker.start(config) == config.bootstrap  # a no-op start inside a session
    assert not broker.status(config).running  # the borrower started it: stopped

    with broker.borrowed(config):
        broker.start(config, pin=True)  # `kubedelta kafka start` during a session
    assert broker.status(config).running  # pinned: left running


def test_ports_are_pinned_by_the_first_format(tmp_path: Path) -> None:
    config = LocalBrokerConfig(home=tmp_path, port=free_port(), controller_port=free_port())
    # What a start on other ports leaves behind: formatted data and its ports.
    config.data.mkdir(parents=True)
    (config.data / "meta.properties").write_text("node.id=1\n")
    (config.home / "formatted-for").write_text("9092 9093\n")
    with pytest.raises(BrokerError, match="kafka reset"):
        broker.start(config)
    broker.reset(config)
    assert not config.data.exists()
    assert not (config.home / "formatted-for").exists()

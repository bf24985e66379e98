"""The shared Kafka settings: one set of KUBEDELTA_* names feeds every command's
connection, the command line wins over the environment, and each command keeps its
own client id."""

from __future__ import annotations

import pytest

from kubedelta.cmd_consume import ConsumeSettings, settings_from
from kubedelta.cmd_produce import ProduceSettings
from kubedelta.kafka_settings import KafkaSettings

SECURE_ENV = {
    "KUBEDELTA_BOOTSTRAP": "broker-0:9093,broker-1:9093",
    "KUBEDELTA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KUBEDELTA_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KUBEDELTA_KAFKA_USERNAME": "cluster-a",
    "KUBEDELTA_KAFKA_PASSWORD": "s3cret",
    "KUBEDELTA_KAFKA_SSL_CAFILE": "/etc/kafka/ca.crt",
    "KUBEDELTA_KAFKA_SSL_CERTFILE": "/etc/kafka/tls.crt",
    "KUBEDELTA_KAFKA_SSL_KEYFILE": "/etc/kafka/tls.key",
}


@pytest.mark.parametrize(
    ("settings_class", "client_id"),
    [(ProduceSettings, "kubedelta-producer"), (ConsumeSettings, "kubedelta-consumer")],
)
def test_every_command_builds_the_same_connection_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings_class: type[KafkaSettings], client_id: str
) -> None:
    for name, value in SECURE_ENV.items():
        monkeypatch.setenv(name, value)
    connection = settings_class().kafka()
    assert connection.bootstrap_servers == "broker-0:9093,broker-1:9093"
    assert connection.security_protocol == "SASL_SSL"
    assert connection.sasl_mechanism == "SCRAM-SHA-512"
    assert connection.sasl_username == "cluster-a"
    assert connection.sasl_password == "s3cret"
    assert connection.ssl_cafile == "/etc/kafka/ca.crt"
    assert connection.ssl_certfile == "/etc/kafka/tls.crt"
    assert connection.ssl_keyfile == "/etc/kafka/tls.key"
    assert connection.client_id == client_id


def test_unset_settings_mean_a_plaintext_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECURE_ENV:
        monkeypatch.delenv(name, raising=False)
    connection = ProduceSettings().kafka()
    assert connection.bootstrap_servers == "127.0.0.1:9092"
    assert connection.security_protocol == "PLAINTEXT"
    assert connection.sasl_mechanism is None
    assert connection.sasl_username is None
    assert connection.sasl_password is None
    assert (connection.ssl_cafile, connection.ssl_certfile, connection.ssl_keyfile) == (
        None,
        None,
        None,
    )


def test_the_bootstrap_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEDELTA_BOOTSTRAP", "from-env:9092")
    assert settings_from(bootstrap="from-flag:9092").kafka().bootstrap_servers == "from-flag:9092"
    assert settings_from(bootstrap=None).kafka().bootstrap_servers == "from-env:9092"
    assert ProduceSettings(bootstrap="from-flag:9092").kafka().bootstrap_servers == (
        "from-flag:9092"
    )


def test_the_password_stays_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBEDELTA_KAFKA_PASSWORD", "s3cret")
    assert "s3cret" not in repr(ProduceSettings())
    assert "s3cret" not in repr(ProduceSettings().kafka())


@pytest.mark.parametrize("command", ["produce", "consume"])
def test_a_bad_environment_value_is_a_usage_error_not_a_traceback(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from click.testing import CliRunner

    from kubedelta.cli import main

    monkeypatch.setenv("KUBEDELTA_LINGER_MS", "soon")  # produce: a float
    monkeypatch.setenv("KUBEDELTA_BATCH_MAX_RECORDS", "many")  # consume: an int
    args = [command, "--cluster", "alpha"] if command == "produce" else [command]
    if command == "consume":
        args += ["--data-dir", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "bad setting" in result.output
    assert "Traceback" not in result.output

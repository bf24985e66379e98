"""The Kafka connection settings every Kafka-speaking command reads (``produce``,
``consume``, ``replay``): one set of ``KUBEDELTA_*`` names, one ``--bootstrap`` flag and
one way of building ``plumbing.kafka.KafkaConnection`` from them.

Environment names: ``KUBEDELTA_BOOTSTRAP``, ``KUBEDELTA_KAFKA_SECURITY_PROTOCOL``,
``KUBEDELTA_KAFKA_SASL_MECHANISM``, ``KUBEDELTA_KAFKA_USERNAME``,
``KUBEDELTA_KAFKA_PASSWORD``, ``KUBEDELTA_KAFKA_SSL_CAFILE``,
``KUBEDELTA_KAFKA_SSL_CERTFILE``, ``KUBEDELTA_KAFKA_SSL_KEYFILE``. Credentials have no
command-line flag so they never show in ``ps``.
"""

from __future__ import annotations

from typing import ClassVar

import click
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from plumbing.kafka import KafkaConnection

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

#: ``--bootstrap``; None when not given, so ``KUBEDELTA_BOOTSTRAP`` or the default applies.
bootstrap_option = click.option(
    "--bootstrap", type=str, default=None, help=f"Kafka bootstrap servers [{DEFAULT_BOOTSTRAP}]."
)


class KafkaSettings(BaseSettings):
    """Where the brokers are and how to authenticate; a command's settings extend this.

    Empty strings mean "not set" (an environment variable cannot hold None);
    ``plumbing/kafka.py`` documents each field of the connection they become.
    """

    model_config = SettingsConfigDict(env_prefix="KUBEDELTA_", frozen=True, extra="ignore")

    #: Names the command in broker logs and quotas; each subclass sets its own.
    kafka_client_id: ClassVar[str] = "kubedelta"

    bootstrap: str = DEFAULT_BOOTSTRAP
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_username: str = ""
    kafka_password: SecretStr | None = None
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""

    def kafka(self) -> KafkaConnection:
        return KafkaConnection(
            bootstrap_servers=self.bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism or None,
            sasl_username=self.kafka_username or None,
            sasl_password=self.kafka_password.get_secret_value() if self.kafka_password else None,
            ssl_cafile=self.kafka_ssl_cafile or None,
            ssl_certfile=self.kafka_ssl_certfile or None,
            ssl_keyfile=self.kafka_ssl_keyfile or None,
            client_id=self.kafka_client_id,
        )

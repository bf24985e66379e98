"""Who may do what on a secure broker: principals, ACL sets per role, SCRAM
credentials and the Kubernetes Secret a producer runs with. Pure code, no I/O.

Roles (docs/security.md has the threat model):

* **admin** (``User:kubedelta-admin``): super user; bootstrapped at format time.
* **cluster producer** (``User:cluster-<name>``): WRITE + DESCRIBE on its own
  LITERAL topic ``<prefix>.<name>``, IDEMPOTENT_WRITE on the cluster resource.
  READ on its *own* topic only (``read_back``, on by default: a restarted
  producer reads its topic back and resends only what changed; ``read_back=False``
  removes it), no CREATE, nothing on other topics.
* **consumer** (``User:consumer-<name>``): READ + DESCRIBE on PREFIXED
  ``<prefix>.``, READ on PREFIXED consumer groups, WRITE + DESCRIBE on the
  dead-letter topic, IDEMPOTENT_WRITE on the cluster (its dead-letter producer
  is idempotent).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import yaml

from deltas.errors import ConfigError
from deltas.keys import (
    DEAD_LETTER_TOPIC,
    DEFAULT_TOPIC_PREFIX,
    is_cluster_name,
    topic_for,
    validate_cluster_name,
)

ADMIN_USER = "kubedelta-admin"
"""The super user's SCRAM name: bootstrapped by ``kafka-storage format --add-scram``."""
BROKER_CN = "kubedelta-broker"
"""Common name of the brokers' certificate; the controller listener maps it to ``User:kubedelta-broker``."""
CLUSTER_USER_PREFIX = "cluster-"
CONSUMER_USER_PREFIX = "consumer-"
DEFAULT_GROUP_PREFIX = "kubedelta"
"""Consumer groups (shard mode) a consumer principal may join: every group named ``kubedelta*``."""
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
"""PBKDF2 rounds of stored SCRAM credentials (Kafka's minimum is 4096)."""
PASSWORD_BYTES = 32
"""Random bytes per generated password (256 bits, URL-safe base64)."""


class ResourceType(enum.IntEnum):
    """Kafka's ResourceType codes (on the wire of Create/Delete/DescribeAcls)."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class PatternType(enum.IntEnum):
    """Kafka's PatternType codes."""

    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(enum.IntEnum):
    """Kafka's AclOperation codes."""

    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12


class Permission(enum.IntEnum):
    """Kafka's AclPermissionType codes."""

    ANY = 1
    DENY = 2
    ALLOW = 3


CLUSTER_RESOURCE = "kafka-cluster"
"""The one name the CLUSTER resource has."""


@dataclass(frozen=True, slots=True, order=True)
class AclBinding:
    """One ACL: ``principal`` may (or may not) do ``operation`` on a resource."""

    resource_type: ResourceType  #: TOPIC, GROUP or CLUSTER
    resource_name: str  #: topic/group name or prefix; "kafka-cluster" for CLUSTER
    pattern: PatternType  #: LITERAL (exact name) or PREFIXED (every name starting so)
    principal: str  #: e.g. "User:cluster-a"
    operation: Operation
    permission: Permission = Permission.ALLOW
    host: str = "*"  #: client address the ACL applies to; any

    def describe(self) -> str:
        """``ALLOW User:x WRITE TOPIC:LITERAL:name``: for logs and CLI output."""
        return (
            f"{self.permission.name} {self.principal} {self.operation.name} "
            f"{self.resource_type.name}:{self.pattern.name}:{self.resource_name}"
        )


def user(name: str) -> str:
    """The principal of a SCRAM user name."""
    return f"User:{name}"


def cluster_user(cluster: str) -> str:
    """SCRAM user name of a cluster's producer: ``cluster-<name>``."""
    return CLUSTER_USER_PREFIX + validate_cluster_name(cluster)


def consumer_user(name: str) -> str:
    """SCRAM user name of a consumer identity: ``consumer-<name>`` (name is a DNS label)."""
    if not is_cluster_name(name):
        raise ConfigError(f"consumer identity {name!r} must be a DNS label (like cluster names)")
    return CONSUMER_USER_PREFIX + name


def producer_acls(
    cluster: str, *, prefix: str = DEFAULT_TOPIC_PREFIX, read_back: bool = True
) -> tuple[AclBinding, ...]:
    """What cluster ``cluster``'s producer may do: write its own topic, nothing else."""
    principal = user(cluster_user(cluster))
    topic = topic_for(cluster, prefix)
    ops = [Operation.WRITE, Operation.DESCRIBE] + ([Operation.READ] if read_back else [])
    bindings = [
        AclBinding(ResourceType.TOPIC, topic, PatternType.LITERAL, principal, op) for op in ops
    ]
    bindings.append(
        AclBinding(
            ResourceType.CLUSTER,
            CLUSTER_RESOURCE,
            PatternType.LITERAL,
            principal,
            Operation.IDEMPOTENT_WRITE,
        )
    )
    return tuple(sorted(bindings))


def consumer_acls(
    name: str,
    *,
    prefix: str = DEFAULT_TOPIC_PREFIX,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    group_prefix: str = DEFAULT_GROUP_PREFIX,
) -> tuple[AclBinding, ...]:
    """What a consumer may do: read every cluster topic, write dead letters, join groups."""
    principal = user(consumer_user(name))
    topics = prefix + "."
    bindings = [
        AclBinding(ResourceType.TOPIC, topics, PatternType.PREFIXED, principal, Operation.READ),
        AclBinding(ResourceType.TOPIC, topics, PatternType.PREFIXED, principal, Operation.DESCRIBE),
        AclBinding(
            ResourceType.GROUP, group_prefix, PatternType.PREFIXED, principal, Operation.READ
        ),
        AclBinding(
            ResourceType.TOPIC, dead_letter_topic, PatternType.LITERAL, principal, Operation.WRITE
        ),
        AclBinding(
            ResourceType.TOPIC,
            dead_letter_topic,
            PatternType.LITERAL,
            principal,
            Operation.DESCRIBE,
        ),
        AclBinding(
            ResourceType.CLUSTER,
            CLUSTER_RESOURCE,
            PatternType.LITERAL,
            principal,
            Operation.IDEMPOTENT_WRITE,
        ),
    ]
    return tuple(sorted(bindings))


def new_password() -> str:
    """A random password: 256 bits, URL-safe base64 (no quoting trouble in JAAS or YAML)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the broker stores for a SCRAM user: never the password itself."""

    user: str
    mechanism: str  #: SCRAM-SHA-512 (or -256)
    iterations: int  #: PBKDF2 rounds
    salt: bytes = b""
    salted_password: bytes = b""

    @property
    def mechanism_code(self) -> int:
        """ScramMechanism code on the wire of AlterUserScramCredentials."""
        return {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}[self.mechanism]


def scram_credential(
    user_name: str,
    password: str,
    *,
    mechanism: str = SCRAM_MECHANISM,
    iterations: int = SCRAM_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredential:
    """Salt and hash ``password`` as RFC 5802 says (Hi = PBKDF2-HMAC), client side, so the
    password itself never crosses the wire to the broker's admin API."""
    digest = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}.get(mechanism)
    if digest is None:
        raise ConfigError(f"unsupported SCRAM mechanism {mechanism!r}")
    if iterations < 4096:
        raise ConfigError("Kafka refuses SCRAM credentials with fewer than 4096 iterations")
    salt = salt if salt is not None else secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    return ScramCredential(user_name, mechanism, iterations, salt, salted)


def scram_client_key(credential: ScramCredential) -> bytes:
    """HMAC(SaltedPassword, "Client Key"): lets tests check a credential without a broker."""
    digest = "sha256" if credential.mechanism == "SCRAM-SHA-256" else "sha512"
    return hmac.new(credential.salted_password, b"Client Key", digest).digest()


# ---------------------------------------------------------------- Kubernetes Secret

CREDENTIALS_SECRET = "kubedelta-producer-kafka"
"""The Secret ``deploy/k8s/producer/deployment.yaml`` reads (``secretKeyRef``)."""
USERNAME_KEY = "username"  #: -> KUBEDELTA_KAFKA_USERNAME
PASSWORD_KEY = "password"  #: -> KUBEDELTA_KAFKA_PASSWORD
HASH_KEY_KEY = "secret-hash-key"  #: -> KUBEDELTA_SECRET_HASH_KEY (keyed hash of Secret data)
CA_KEY = "ca.crt"  #: the CA that signed the brokers (mount it; KUBEDELTA_KAFKA_SSL_CAFILE)
SETTINGS_ANNOTATION = "kubedelta.io/producer-settings"
"""Non-secret settings the producer needs with these credentials (JSON of KUBEDELTA_* env)."""
TLS_MOUNT = "/etc/kubedelta/kafka"
"""Where the deployment is expected to mount this Secret's files (ca.crt, tls.crt, tls.key)."""
DEFAULT_NAMESPACE = "kubedelta"
_ENV_OF_KEY = {
    USERNAME_KEY: "KUBEDELTA_KAFKA_USERNAME",
    PASSWORD_KEY: "KUBEDELTA_KAFKA_PASSWORD",
    HASH_KEY_KEY: "KUBEDELTA_SECRET_HASH_KEY",
}


@dataclass(frozen=True, slots=True)
class ProducerCredentials:
    """Everything a cluster's producer needs to reach the secure brokers."""

    cluster: str
    bootstrap: str  #: broker addresses as the cluster reaches them
    username: str
    password: str = field(repr=False)
    ca_pem: str  #: the CA that signed the brokers' certificates
    secret_hash_key: str = field(default="", repr=False)  #: keyed hash of Secret data
    client_cert_pem: str = ""  #: mTLS only: the producer's certificate
    client_key_pem: str = field(default="", repr=False)  #: mTLS only: its private key
    read_back: bool = True  #: True when the ACLs let it read its own topic back at start

    def public_settings(self) -> dict[str, str]:
        """Settings that are not secret (the ConfigMap's job; also an annotation here)."""
        env = {
            "KUBEDELTA_CLUSTER": self.cluster,
            "KUBEDELTA_BOOTSTRAP": self.bootstrap,
            "KUBEDELTA_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KUBEDELTA_KAFKA_SASL_MECHANISM": SCRAM_MECHANISM,
            "KUBEDELTA_KAFKA_SSL_CAFILE": f"{TLS_MOUNT}/{CA_KEY}",
            # Without READ on its topic the producer cannot read it back at start.
            "KUBEDELTA_RESTORE": "true" if self.read_back else "false",
        }
        if self.client_cert_pem:
            env["KUBEDELTA_KAFKA_SSL_CERTFILE"] = f"{TLS_MOUNT}/tls.crt"
            env["KUBEDELTA_KAFKA_SSL_KEYFILE"] = f"{TLS_MOUNT}/tls.key"
        return env

    def settings(self) -> dict[str, str]:
        """Every KUBEDELTA_* setting the producer runs with (``kubedelta produce`` env)."""
        env = self.public_settings()
        env["KUBEDELTA_KAFKA_USERNAME"] = self.username
        env["KUBEDELTA_KAFKA_PASSWORD"] = self.password
        if self.secret_hash_key:
            env["KUBEDELTA_SECRET_HASH_KEY"] = self.secret_hash_key
        return env


def secret_manifests(
    credentials: ProducerCredentials, *, namespace: str = DEFAULT_NAMESPACE
) -> list[dict[str, Any]]:
    """The producer's Secret, with the name and keys deploy/k8s/producer reads, plus the
    CA (and the mTLS client pair) as files to mount. Values are base64 ``data``, so the
    manifest is byte-exact whatever the PEM's whitespace; the non-secret settings ride
    along as an annotation (they belong in the producer's ConfigMap)."""
    values = {
        USERNAME_KEY: credentials.username,
        PASSWORD_KEY: credentials.password,
        CA_KEY: credentials.ca_pem,
    }
    if credentials.secret_hash_key:
        values[HASH_KEY_KEY] = credentials.secret_hash_key
    if credentials.client_cert_pem:
        values["tls.crt"] = credentials.client_cert_pem
        values["tls.key"] = credentials.client_key_pem
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": CREDENTIALS_SECRET,
                "namespace": namespace,
                "labels": {
                    "app.kubernetes.io/name": "kubedelta-producer",
                    "app.kubernetes.io/part-of": "kubedelta",
                    "kubedelta.io/cluster": credentials.cluster,
                },
                "annotations": {
                    SETTINGS_ANNOTATION: json.dumps(credentials.public_settings(), sort_keys=True)
                },
            },
            "type": "Opaque",
            "data": {
                k: base64.b64encode(v.encode()).decode("ascii") for k, v in sorted(values.items())
            },
        }
    ]


def render_yaml(manifests: list[dict[str, Any]]) -> str:
    """Multi-document YAML, ready for ``kubectl apply -f -``."""
    return yaml.safe_dump_all(manifests, sort_keys=False, default_flow_style=False)


def settings_from_manifests(text: str) -> dict[str, str]:
    """The producer's KUBEDELTA_* settings back from rendered manifests (what the
    Deployment's env + ConfigMap give it)."""
    for doc in yaml.safe_load_all(text):
        if doc and doc.get("metadata", {}).get("name") == CREDENTIALS_SECRET:
            data = {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
            settings: dict[str, str] = json.loads(
                doc["metadata"]["annotations"][SETTINGS_ANNOTATION]
            )
            settings.update({env: data[key] for key, env in _ENV_OF_KEY.items() if key in data})
            return settings
    raise ConfigError(f"no Secret {CREDENTIALS_SECRET} in the manifests")


__all__ = [
    "ADMIN_USER",
    "BROKER_CN",
    "CLUSTER_RESOURCE",
    "CREDENTIALS_SECRET",
    "SCRAM_MECHANISM",
    "TLS_MOUNT",
    "AclBinding",
    "Operation",
    "PatternType",
    "Permission",
    "ProducerCredentials",
    "ResourceType",
    "ScramCredential",
    "cluster_user",
    "consumer_acls",
    "consumer_user",
    "new_password",
    "producer_acls",
    "render_yaml",
    "scram_credential",
    "secret_manifests",
    "settings_from_manifests",
    "user",
]

"""A real, local, single-node Apache Kafka broker (KRaft) for development, tests and demos.

The broker is the genuine ``kafka.Kafka`` server from Maven Central jars: no
Docker, no tarballs, no mocks. Everything it owns lives under one home folder
(default ``<project>/.kubedelta/kafka``)::

    libs/               the jars (fetched once by Maven from deploy/kafka/pom.xml)
    data/               log.dirs (topic data and the KRaft metadata log)
    server.properties   written on every start from LocalBrokerConfig
    log4j2.properties
    logs/server.log     the broker's own log; logs/stdout.log the JVM's console
    broker.pid          the pid of the running broker
    broker.lock         serializes start/stop between processes (CLI, pytest, make)

``start`` is idempotent: a broker from this home that already answers is left
alone and its bootstrap address returned. The broker runs detached (its own
session) so it outlives the command that started it; ``stop`` ends it with
SIGTERM (Kafka's clean shutdown) and falls back to SIGKILL.

Readiness is checked with a minimal Kafka Metadata request over a plain socket
(see :func:`encode_metadata_request`), which only succeeds once the broker has
registered with its controller and serves client requests.

Two options change the layout (recorded in ``formatted-for`` so ``status`` and
``stop`` find every node again):

* ``secure``: the client listener is SASL_SSL (SCRAM-SHA-512; with ``mtls``
  clients must also present a certificate from the local CA), ACLs are enforced
  by the StandardAuthorizer (super users: the admin and the brokers, nobody
  else is allowed anything without an ACL), the controller listener is a
  separate mutual-TLS listener, and brokers talk to each other over the
  SASL_SSL listener as the admin, whose SCRAM credential is written into the
  metadata log at format time (``--add-scram``). The CA, the broker certificate
  (``tls/``) and the admin password (``admin.password``) live in the home.
* ``brokers=N`` (N > 1): N combined broker+controller nodes (a static N-voter
  quorum) on consecutive client ports ``port..port+N-1`` and controller ports
  ``controller_port..controller_port+N-1``, each with its own folder
  ``node-<id>/`` (data, logs, config, pid); replication factor min(N, 3) and
  ``min.insync.replicas=2`` by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from deltas.errors import KubedeltaError
from plumbing.certs import TlsFiles, ensure_broker_tls
from plumbing.identity import ADMIN_USER, BROKER_CN, SCRAM_MECHANISM, new_password
from plumbing.kafka import KafkaConnection

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this module belongs to: home of ``deploy/kafka/pom.xml`` and ``.kubedelta/``."""

KIB = 1024
MIB = 1024 * KIB


class BrokerError(KubedeltaError):
    """The local broker could not be fetched, started, reached or stopped."""


class BrokerPortInUseError(BrokerError):
    """A port the broker needs is taken (often by a broker from another home)."""


class BrokerStartTimeoutError(BrokerError):
    """The broker process ran but did not answer within the start timeout."""

    retriable = True


@dataclass(frozen=True)
class LocalBrokerConfig:
    """Where the local broker lives and how it runs. All paths absolute."""

    home: Path = PROJECT_ROOT / ".kubedelta" / "kafka"
    """Folder holding jars, data, config, logs and pid file; one broker (or cluster) per home."""
    port: int = 9092
    """Client listener port on 127.0.0.1 (of node 1): the bootstrap address clients use."""
    controller_port: int = 9093
    """KRaft controller listener port on 127.0.0.1 (of node 1; same JVM; clients never use it)."""
    host: str = "127.0.0.1"
    """Listen address. Loopback only: without ``secure`` this broker has no authentication."""
    heap: str = "1g"
    """JVM max heap (-Xmx) per node: our ~8 MiB max messages, the log cleaner, and
    thousands of partitions (512 MiB ran out of heap at ~10k partitions with 1,000
    producer connections during a 1,000-cluster benchmark)."""
    max_message_bytes: int = 8 * MIB
    """Largest record batch the broker accepts. Biggest k8s objects ~1.5 MiB plus envelope."""
    segment_bytes: int = 64 * MIB
    """Log segment size: small enough that compaction gets to run on test/demo volumes."""
    start_timeout_s: float = 60.0
    """Seconds to wait for a freshly started broker to answer before giving up (warm start ~3 s)."""
    stop_timeout_s: float = 30.0
    """Seconds to wait after SIGTERM for a clean shutdown before SIGKILL."""
    pom: Path = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
    """Maven pom whose dependencies are the broker's jars (Kafka version pinned there)."""
    jars: Path | None = None
    """Folder of broker jars; None means ``<home>/libs``. Lets several homes share one fetch."""
    extra_jvm_flags: tuple[str, ...] = ("-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError")
    """JVM flags besides the heap. Serial GC: lightest on a small shared machine."""
    brokers: int = 1
    """Nodes in the cluster (each a combined broker+controller, all quorum voters). 3 for
    durability tests: replication 3 with min.insync.replicas=2 survives one node down."""
    node_id: int = 1
    """Which node this config describes (1..brokers): ports, folder and pid file follow it."""
    secure: bool = False
    """SASL_SSL (SCRAM-SHA-512) client listener, ACLs enforced, mutual-TLS controller listener."""
    mtls: bool = False
    """With ``secure``: clients must also present a certificate signed by the local CA."""

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        brokers: int = 1,
        secure: bool = False,
        mtls: bool = False,
    ) -> LocalBrokerConfig:
        """Defaults overridden by ``KUBEDELTA_HOME`` (the home is ``$KUBEDELTA_HOME/kafka``),
        ``KUBEDELTA_KAFKA_PORT`` and ``KUBEDELTA_KAFKA_CONTROLLER_PORT`` (default: the port
        after the last client port, i.e. port + brokers)."""
        base = environ.get("KUBEDELTA_HOME")
        home = Path(base).resolve() / "kafka" if base else cls.home
        port = _port_from(environ, "KUBEDELTA_KAFKA_PORT", cls.port)
        controller_port = _port_from(environ, "KUBEDELTA_KAFKA_CONTROLLER_PORT", port + brokers)
        return cls(
            home=home,
            port=port,
            controller_port=controller_port,
            brokers=brokers,
            secure=secure,
            mtls=mtls,
        )

    def __post_init__(self) -> None:
        if not 1 <= self.brokers <= 9:
            raise BrokerError(f"brokers must be 1..9, got {self.brokers}")
        if not 1 <= self.node_id <= self.brokers:
            raise BrokerError(f"node_id {self.node_id} is not one of 1..{self.brokers}")
        if self.mtls and not self.secure:
            raise BrokerError("mtls needs secure (mutual TLS is an addition to SASL_SSL)")
        clients = range(self.port, self.port + self.brokers)
        controllers = range(self.controller_port, self.controller_port + self.brokers)
        if self.port == self.controller_port or set(clients) & set(controllers):
            raise BrokerError(
                f"client and controller ports must differ (client {self.port}, controller "
                f"{self.controller_port}, {self.brokers} node(s) each)"
            )
        for name, value in (
            ("port", self.port),
            ("controller_port", self.controller_port),
            ("port", clients[-1]),
            ("controller_port", controllers[-1]),
        ):
            if not 0 < value < 65536:
                raise BrokerError(f"{name} {value} is not a TCP port")

    # -- nodes ---------------------------------------------------------------------

    def node(self, node_id: int) -> LocalBrokerConfig:
        """The config of one node of this cluster."""
        return replace(self, node_id=node_id)

    def nodes(self) -> list[LocalBrokerConfig]:
        return [self.node(i) for i in range(1, self.brokers + 1)]

    @property
    def client_port(self) -> int:
        """This node's client port."""
        return self.port + self.node_id - 1

    @property
    def node_controller_port(self) -> int:
        """This node's controller port."""
        return self.controller_port + self.node_id - 1

    @property
    def node_home(self) -> Path:
        """This node's folder: the home itself for a single broker."""
        return self.home if self.brokers == 1 else self.home / f"node-{self.node_id}"

    @property
    def bootstrap(self) -> str:
        """Every node's client address, comma-separated (one for a single broker)."""
        return ",".join(f"{self.host}:{self.port + i}" for i in range(self.brokers))

    @property
    def libs(self) -> Path:
        return self.jars if self.jars is not None else self.home / "libs"

    @property
    def data(self) -> Path:
        """This node's log.dirs."""
        return self.node_home / "data"

    @property
    def server_log(self) -> Path:
        return self.node_home / "logs" / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.node_home / "logs" / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.node_home / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.node_home / "server.properties"

    @property
    def tls(self) -> TlsFiles:
        """The local CA and broker certificate (secure mode), shared by all nodes."""
        return TlsFiles(self.home / "tls")

    @property
    def admin_password_file(self) -> Path:
        """The admin's SCRAM password (secure mode), mode 0600."""
        return self.home / "admin.password"

    @property
    def layout(self) -> str:
        """What the storage was formatted for; ``formatted-for`` records it."""
        words = [str(self.port), str(self.controller_port)]
        if self.brokers > 1:
            words.append(f"brokers={self.brokers}")
        if self.secure:
            words.append("secure")
        if self.mtls:
            words.append("mtls")
        return " ".join(words)


def _port_from(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BrokerError(f"{name}={raw!r} is not a port number") from exc


@dataclass(frozen=True)
class BrokerStatus:
    """What ``status`` found."""

    running: bool
    """True when this home's broker process is alive and answers a Metadata request."""
    bootstrap: str
    """Client address (whether or not it is running)."""
    pid: int | None
    """Broker process id when a process from this home is alive, else None."""
    home: Path
    """The broker's home folder."""
    note: str = ""
    """Why it is not running / not answering, for humans."""
    pids: tuple[int | None, ...] = ()
    """Process id of every node (None where a node is down), node 1 first."""


# ---------------------------------------------------------------- pure parts


def server_properties(config: LocalBrokerConfig, admin_password: str = "") -> str:
    """A node's ``server.properties``: combined broker+controller on loopback.

    ``admin_password`` (secure mode) goes into the inter-broker SASL login; the
    file is written with mode 0600.
    """
    n = config.brokers
    host = config.host
    replicas = min(n, 3)
    min_isr = 2 if replicas >= 3 else 1
    client = "SASL_SSL" if config.secure else "PLAINTEXT"
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": config.node_id,
    }
    if n == 1:
        settings["controller.quorum.bootstrap.servers"] = f"{host}:{config.controller_port}"
    else:  # a static quorum: every node votes
        settings["controller.quorum.voters"] = ",".join(
            f"{i}@{host}:{config.controller_port + i - 1}" for i in range(1, n + 1)
        )
    settings |= {
        "listeners": f"{client}://{host}:{config.client_port},CONTROLLER://{host}:{config.node_controller_port}",
        "advertised.listeners": f"{client}://{host}:{config.client_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": client,
        "listener.security.protocol.map": (
            "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
            if config.secure
            else "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ),
        "log.dirs": str(config.data),
        # Our producers create their topics (compacted, partition count chosen).
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        # Internal topics as replicated as the cluster allows; few partitions so the
        # first consumer group / transaction does not wait for 50 partitions.
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": 0,
        # Large Kubernetes objects (ConfigMaps, CRDs) reach ~1.5 MiB.
        "message.max.bytes": config.max_message_bytes,
        "replica.fetch.max.bytes": config.max_message_bytes,
        "socket.request.max.bytes": max(100 * MIB, 2 * config.max_message_bytes),
        # Compaction is how the per-cluster topics stay bounded.
        "log.cleaner.enable": "true",
        "log.cleaner.threads": 1,
        "log.cleaner.dedupe.buffer.size": 32 * MIB,
        "log.segment.bytes": config.segment_bytes,
        "log.index.size.max.bytes": index_bytes_for(config.segment_bytes),
        # Small, shared machine.
        "num.network.threads": 2,
        "num.io.threads": 4,
        "background.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
    }
    if n > 1:
        settings |= {
            # Never elect a replica that missed acknowledged writes.
            "unclean.leader.election.enable": "false",
            # A killed node is noticed quickly (tests kill leaders on purpose).
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "replica.lag.time.max.ms": 10000,
        }
    if config.secure:
        settings |= _security_settings(config, admin_password)
    lines = ["# Written by kubedelta (plumbing/broker.py) on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _security_settings(config: LocalBrokerConfig, admin_password: str) -> dict[str, str | int]:
    """SASL_SSL + SCRAM for clients and brokers, mutual TLS for the controller, ACLs."""
    tls = config.tls
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN_USER}" password="{admin_password}";'
    )
    return {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config": jaas,
        # One certificate for every node: its SAN is 127.0.0.1/localhost.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.broker_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca_cert),
        "ssl.endpoint.identification.algorithm": "https",
        "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        "ssl.client.auth": "required" if config.mtls else "none",
        # Only holders of a CA-signed certificate (the brokers) reach the controllers.
        "listener.name.controller.ssl.client.auth": "required",
        # CN=kubedelta-broker -> User:kubedelta-broker (not the whole DN).
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER};User:{BROKER_CN}",
        "allow.everyone.if.no.acl.found": "false",
        # A wrong password costs the client a second: slows online guessing.
        "connection.failed.authentication.delay.ms": 1000,
    }


def log4j2_properties(config: LocalBrokerConfig) -> str:
    """Log4j 2 config: INFO to ``logs/server.log``, noisy request logging off."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {config.server_log}",
            f"appender.file.filePattern = {config.server_log}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 3",
            "rootLogger.level = info",
            "rootLogger.appenderRef.file.ref = file",
            "logger.request.name = kafka.request.logger",
            "logger.request.level = warn",
            "",
        ]
    )


def java_command(config: LocalBrokerConfig, main_class: str, *args: str) -> list[str]:
    """``java`` invocation of a Kafka main class with the cached jars on the class path."""
    return [
        "java",
        f"-Xmx{config.heap}",
        *config.extra_jvm_flags,
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config.node_home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={config.server_log.parent}",
        "-cp",
        f"{config.libs}/*",
        main_class,
        *args,
    ]


INDEX_INTERVAL_BYTES = 4096
"""Kafka's default ``log.index.interval.bytes``: one offset (8 B) and one time (12 B)
index entry per 4 KiB appended."""


def index_bytes_for(segment_bytes: int) -> int:
    """``log.index.size.max.bytes`` sized to what a full segment needs, not Kafka's 10 MiB.

    Each partition's active segment has two index files, created sparse at this size and
    mmapped. A write fault on one reads the file around it, and with a large read-ahead
    (8 MiB on this machine's disk) the kernel zero-fills megabytes of holes per fault:
    with 1,000 partitions that was ~75 % of the broker's CPU (perf: ``filemap_fault`` ->
    ``ext4_mpage_readpages`` -> ``memset``). A full segment needs segment/4 KiB entries of
    12 B; twice that leaves room (a full index only rolls the segment early)."""
    entries = -(-segment_bytes // INDEX_INTERVAL_BYTES)
    return max(64 * KIB, 2 * 12 * entries)


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as kafka-storage makes).

    One in 64 such strings starts with ``-``, which kafka-storage's argument parser reads as
    an option ("--cluster-id: expected one argument"); Kafka's own ``Uuid.randomUuid`` draws
    again in that case, and so do we."""
    while True:
        cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


METADATA_API_KEY = 3
METADATA_VERSION = 4
"""Metadata v4: non-flexible (simple to encode), supported by every Kafka 4.x broker."""


def encode_metadata_request(correlation_id: int, client_id: str = "kubedelta-probe") -> bytes:
    """A size-prefixed Metadata v4 request for no topics: the reply lists only brokers."""
    client = client_id.encode()
    body = struct.pack(
        f">hhih{len(client)}sib",
        METADATA_API_KEY,
        METADATA_VERSION,
        correlation_id,
        len(client),
        client,
        0,  # topics: empty array = none (null would mean all)
        0,  # allow_auto_topic_creation
    )
    return struct.pack(">i", len(body)) + body


def decode_metadata_brokers(correlation_id: int, payload: bytes) -> list[tuple[int, str, int]]:
    """``(node_id, host, port)`` of every broker in a Metadata v4 response body (size prefix removed)."""
    try:
        (got_correlation, _throttle_ms, count) = struct.unpack_from(">iii", payload, 0)
        if got_correlation != correlation_id:
            raise BrokerError(
                f"metadata reply for request {got_correlation}, expected {correlation_id}"
            )
        offset = 12
        brokers: list[tuple[int, str, int]] = []
        for _ in range(count):
            (node_id, host_len) = struct.unpack_from(">ih", payload, offset)
            offset += 6
            host = payload[offset : offset + host_len].decode()
            offset += host_len
            (port, rack_len) = struct.unpack_from(">ih", payload, offset)
            offset += 6 + max(rack_len, 0)
            brokers.append((node_id, host, port))
        return brokers
    except (struct.error, UnicodeDecodeError) as exc:
        raise BrokerError("malformed metadata reply") from exc


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it is missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- thin I/O


def metadata_brokers(host: str, port: int, timeout_s: float = 2.0) -> list[tuple[int, str, int]]:
    """Send one Metadata request; raises OSError/BrokerError when nothing Kafka-like answers."""
    correlation_id = int.from_bytes(os.urandom(3), "big")
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(encode_metadata_request(correlation_id))
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        if not 0 < size <= MIB:
            raise BrokerError(f"{host}:{port} answered with a {size}-byte frame: not Kafka")
        return decode_metadata_brokers(correlation_id, _recv_exactly(sock, size))


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-reply")
        chunks += chunk
    return bytes(chunks)


def answers_at(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """True when a Kafka broker on ``host:port`` lists itself in a Metadata reply."""
    try:
        brokers = metadata_brokers(host, port, timeout_s)
    except (OSError, BrokerError):
        return False
    return any(broker_port == port for _node, _host, broker_port in brokers)


API_VERSIONS_KEY = 18


def encode_api_versions_request(correlation_id: int, client_id: str = "kubedelta-probe") -> bytes:
    """A size-prefixed ApiVersions v0 request: answered before SASL authentication."""
    client = client_id.encode()
    body = struct.pack(
        f">hhih{len(client)}s", API_VERSIONS_KEY, 0, correlation_id, len(client), client
    )
    return struct.pack(">i", len(body)) + body


def probe_ssl_context(config: LocalBrokerConfig) -> ssl.SSLContext:
    """Trusts the local CA; presents the broker certificate (mTLS listeners ask for one)."""
    context = ssl.create_default_context(cafile=str(config.tls.ca_cert))
    context.load_cert_chain(str(config.tls.broker_cert), str(config.tls.broker_key))
    return context


def tls_answers_at(host: str, port: int, context: ssl.SSLContext, timeout_s: float = 2.0) -> bool:
    """True when a TLS handshake with ``host:port`` succeeds and Kafka answers ApiVersions."""
    correlation_id = int.from_bytes(os.urandom(3), "big")
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host) as sock,
        ):
            sock.sendall(encode_api_versions_request(correlation_id))
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            if not 4 <= size <= MIB:
                return False
            (got,) = struct.unpack(">i", _recv_exactly(sock, size)[:4])
            return bool(got == correlation_id)
    except (OSError, ssl.SSLError, struct.error):
        return False


def answers(config: LocalBrokerConfig, timeout_s: float = 2.0) -> bool:
    """True when this node's client port answers (TLS + ApiVersions when secure)."""
    if config.secure:
        try:
            context = probe_ssl_context(config)
        except (OSError, ssl.SSLError):
            return False
        return tls_answers_at(config.host, config.client_port, context, timeout_s)
    return answers_at(config.host, config.client_port, timeout_s)


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (bind test, as the JVM will bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _broker_process(config: LocalBrokerConfig) -> psutil.Process | None:
    """The live broker process recorded in this node's pid file, if it really is ours."""
    try:
        pid = int(config.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = process.cmdline()
    except psutil.Error:
        return None
    # Guard against pid reuse: the command line names this node's properties file.
    if "kafka.Kafka" in cmdline and str(config.properties_file) in cmdline:
        return process
    return None


def node_pid(config: LocalBrokerConfig, node_id: int) -> int | None:
    """Process id of node ``node_id`` when it runs (tests kill nodes with it)."""
    process = _broker_process(config.node(node_id))
    return None if process is None else process.pid


@contextlib.contextmanager
def _home_lock(config: LocalBrokerConfig) -> Iterator[None]:
    """Serialize start/stop of one home across processes (CLI, pytest sessions, make)."""
    config.home.mkdir(parents=True, exist_ok=True)
    with (config.home / "broker.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` is not on PATH: {why}")
    return path


def _pom_digest(config: LocalBrokerConfig) -> str:
    try:
        return hashlib.sha256(config.pom.read_bytes()).hexdigest()
    except FileNotFoundError as exc:
        raise BrokerError(
            f"broker pom {config.pom} is missing (run from a kubedelta checkout)"
        ) from exc


def jars_ready(config: LocalBrokerConfig) -> bool:
    """True when ``libs/`` holds a complete fetch for the current pom."""
    stamp = config.libs / ".fetched"
    return stamp.exists() and stamp.read_text().strip() == _pom_digest(config)


def fetch_jars(config: LocalBrokerConfig) -> bool:
    """Fetch the broker jars with Maven unless already cached. Returns True when it fetched."""
    with _home_lock(config):
        return _fetch_jars(config)


def _fetch_jars(config: LocalBrokerConfig) -> bool:
    """Fetch unless cached (caller holds the home lock).

    Fetches into a scratch folder and renames it into place, so an interrupted
    fetch never looks complete; the stamp records which pom the jars are for.
    """
    if jars_ready(config):
        return False
    mvn = _require_tool("mvn", "Maven fetches the Kafka broker jars (apt-get install maven)")
    digest = _pom_digest(config)
    config.libs.parent.mkdir(parents=True, exist_ok=True)
    scratch = config.libs.with_name(config.libs.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    command = [
        mvn,
        "-q",
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(config.pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={scratch}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise BrokerError("Maven could not fetch the Kafka jars:\n" + "\n".join(output))
    (scratch / ".fetched").write_text(digest + "\n")
    shutil.rmtree(config.libs, ignore_errors=True)
    scratch.rename(config.libs)
    return True


def _is_formatted(node: LocalBrokerConfig) -> bool:
    return (node.data / "meta.properties").exists()


def _format_command(node: LocalBrokerConfig, cluster_id: str, admin_password: str) -> list[str]:
    """``kafka-storage format`` of one node: the admin's SCRAM credential goes straight
    into the metadata log (secure), so the brokers can authenticate to each other."""
    args = ["format", "-t", cluster_id, "-c", str(node.properties_file)]
    if node.brokers == 1:
        args.append("--standalone")
    if node.secure:
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={admin_password}]"]
    return java_command(node, "kafka.tools.StorageTool", *args)


def _format_storage(nodes: list[LocalBrokerConfig], admin_password: str) -> None:
    """First start only: write the KRaft metadata (one cluster id, every node a voter).
    Nodes are formatted in parallel: each format is a JVM start."""
    todo = [node for node in nodes if not _is_formatted(node)]
    if not todo:
        return
    existing = [node for node in nodes if _is_formatted(node)]
    cluster_id = _cluster_id_of(existing[0]) if existing else random_cluster_id()
    for node in todo:
        node.data.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        results = list(
            pool.map(
                lambda node: subprocess.run(
                    _format_command(node, cluster_id, admin_password),
                    capture_output=True,
                    text=True,
                    check=False,
                ),
                todo,
            )
        )
    for node, result in zip(todo, results, strict=True):
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-30:]
            raise BrokerError(
                f"formatting the storage of node {node.node_id} failed:\n" + "\n".join(output)
            )


def _cluster_id_of(node: LocalBrokerConfig) -> str:
    for line in (node.data / "meta.properties").read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.split("=", 1)[1].strip()
    raise BrokerError(f"{node.data / 'meta.properties'} has no cluster.id")


def _check_ports(node: LocalBrokerConfig) -> None:
    for name, port in (("client", node.client_port), ("controller", node.node_controller_port)):
        if port_is_free(node.host, port):
            continue
        # A real broker answers in milliseconds; do not hang on a silent squatter.
        other_kafka = answers_at(node.host, port, timeout_s=0.5)
        owner = "a Kafka broker from another home" if other_kafka else "another process"
        raise BrokerPortInUseError(
            f"{name} port {node.host}:{port} is taken by {owner}, not by the broker in "
            f"{node.home}. Stop it, or choose other ports with KUBEDELTA_KAFKA_PORT "
            "(and KUBEDELTA_KAFKA_CONTROLLER_PORT, default port + 1)."
        )


def _formatted_marker(config: LocalBrokerConfig) -> Path:
    return config.home / "formatted-for"


def _check_formatted_ports(config: LocalBrokerConfig) -> None:
    """KRaft stores the controller endpoints at format time, and a secure or multi-node
    home is formatted differently: refuse to run it with another layout."""
    marker = _formatted_marker(config)
    wanted = config.layout
    formatted = [config.home / "data" / "meta.properties"]
    formatted += list(config.home.glob("node-*/data/meta.properties"))
    if not any(path.exists() for path in formatted):
        marker.unlink(missing_ok=True)
        return
    if marker.exists() and marker.read_text().strip() != wanted:
        raise BrokerError(
            f"the broker data in {config.home} was formatted for {marker.read_text().strip()!r} "
            f"(client port, controller port, options), not {wanted!r}. "
            "Run `kubedelta kafka reset` to wipe it, or use another KUBEDELTA_HOME."
        )


def recorded_layout(config: LocalBrokerConfig) -> LocalBrokerConfig:
    """``config`` with the ports, node count and security its home was formatted with, so
    ``status``/``stop``/``cluster add`` find every node without repeating the start flags."""
    marker = _formatted_marker(config)
    try:
        words = marker.read_text().split()
    except FileNotFoundError:
        return config
    if len(words) < 2:
        return config
    try:
        port, controller_port = int(words[0]), int(words[1])
        brokers = 1
        for word in words[2:]:
            if word.startswith("brokers="):
                brokers = int(word.split("=", 1)[1])
    except ValueError as exc:
        raise BrokerError(f"{marker} is damaged: {' '.join(words)!r}") from exc
    return replace(
        config,
        port=port,
        controller_port=controller_port,
        brokers=brokers,
        node_id=1,
        secure="secure" in words,
        mtls="mtls" in words,
    )


def _spawn(config: LocalBrokerConfig) -> int:
    """Run one node detached (own session, reparented to init); return its pid.

    A tiny shell backgrounds the JVM and prints its pid, so the broker is never
    our child: no zombie when it exits, and it outlives this process.
    """
    config.stdout_log.parent.mkdir(parents=True, exist_ok=True)
    command = java_command(config, "kafka.Kafka", str(config.properties_file))
    launcher = 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & echo $!'
    result = subprocess.run(
        ["sh", "-c", launcher, "sh", str(config.stdout_log), *command],
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        cwd=config.node_home,
    )
    try:
        pid = int(result.stdout.strip())
    except ValueError as exc:
        raise BrokerError(f"could not launch the broker: {result.stderr.strip()}") from exc
    config.pid_file.write_text(f"{pid}\n")
    return pid


def _wait_ready(config: LocalBrokerConfig, pid: int, deadline: float | None = None) -> None:
    deadline = deadline if deadline is not None else time.monotonic() + config.start_timeout_s
    while time.monotonic() < deadline:
        if answers(config, timeout_s=1.0):
            return
        if _broker_process(config) is None:
            raise BrokerError(
                f"the broker (node {config.node_id}, pid {pid}) exited during start-up; "
                "last log lines:\n" + tail(config.stdout_log, 10) + "\n" + tail(config.server_log)
            )
        time.sleep(0.1)
    _terminate(config, pid)
    raise BrokerStartTimeoutError(
        f"the broker did not answer on {config.host}:{config.client_port} within "
        f"{config.start_timeout_s:.0f} s and was stopped; last lines of "
        f"{config.server_log}:\n" + tail(config.server_log)
    )


def _wait_secure_ready(config: LocalBrokerConfig, deadline: float) -> None:
    """TLS answers before the broker is registered; wait until the admin, authenticated,
    sees every node in the cluster metadata (and ACL requests will be served)."""
    with ThreadPoolExecutor(max_workers=1) as pool:  # a fresh event loop, whoever calls us
        pool.submit(asyncio.run, _await_registered(config, deadline)).result()


async def _await_registered(config: LocalBrokerConfig, deadline: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    last: BaseException | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(**admin_connection(config).client_kwargs())
        try:
            await admin.start()
            described = await admin.describe_cluster()
            if len(described.get("brokers", [])) >= config.brokers:
                return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            await admin.close()
        await asyncio.sleep(0.3)
    raise BrokerStartTimeoutError(
        f"the secure broker at {config.bootstrap} did not serve its admin in time: {last!r}"
    )


def _terminate(config: LocalBrokerConfig, pid: int) -> None:
    """SIGTERM (Kafka shuts down cleanly), then SIGKILL after the stop timeout."""
    _terminate_all([(config, pid)], config.stop_timeout_s)


def _terminate_all(nodes: list[tuple[LocalBrokerConfig, int]], timeout_s: float) -> None:
    """SIGTERM every node at once (a quorum stopping one by one would stall the last ones'
    controlled shutdown), then SIGKILL whatever still runs after ``timeout_s``."""
    processes = []
    for _node, pid in nodes:
        try:
            process = psutil.Process(pid)
            process.send_signal(signal.SIGTERM)
            processes.append(process)
        except psutil.NoSuchProcess:
            pass
    _gone, alive = psutil.wait_procs(processes, timeout=timeout_s)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
    for node, _pid in nodes:
        node.pid_file.unlink(missing_ok=True)


def _admin_password(config: LocalBrokerConfig) -> str:
    """The admin's SCRAM password: made once per home, kept with mode 0600."""
    path = config.admin_password_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    password = new_password()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    return password


def admin_connection(
    config: LocalBrokerConfig, client_id: str = "kubedelta-admin"
) -> KafkaConnection:
    """How the local admin reaches this home's brokers (super user on a secure broker)."""
    if not config.secure:
        return KafkaConnection(bootstrap_servers=config.bootstrap, client_id=client_id)
    try:
        password = config.admin_password_file.read_text().strip()
    except FileNotFoundError as exc:
        raise BrokerError(
            f"no admin password in {config.home}: start the broker with --secure first"
        ) from exc
    tls = config.tls
    return KafkaConnection(
        bootstrap_servers=config.bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism=SCRAM_MECHANISM,
        sasl_username=ADMIN_USER,
        sasl_password=password,
        ssl_cafile=str(tls.ca_cert),
        ssl_certfile=str(tls.broker_cert) if config.mtls else None,
        ssl_keyfile=str(tls.broker_key) if config.mtls else None,
        client_id=client_id,
    )


def _write_private_text(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- public API


def start(config: LocalBrokerConfig, *, pin: bool = False) -> str:
    """Start every node that is not running; return the bootstrap address.

    Fetches the jars and formats the storage on first use. Raises BrokerError
    (java/maven missing, port taken, early exit) or BrokerStartTimeoutError.
    ``pin`` (what the CLI does) keeps a broker that a test session started
    running after that session ends (see :func:`borrowed`). On a cluster whose
    node was killed, ``start`` restarts just that node.
    """
    with _home_lock(config):
        _start_locked(config)
        if pin:
            _auto_stop_marker(config).unlink(missing_ok=True)
        return config.bootstrap


def _start_locked(config: LocalBrokerConfig) -> bool:
    """Start the nodes that are not running (caller holds the home lock). True when this
    call started any."""
    nodes = config.nodes()
    running = {node.node_id: _broker_process(node) for node in nodes}
    deadline = time.monotonic() + config.start_timeout_s
    missing = [node for node in nodes if running[node.node_id] is None]
    if not missing:
        for node in nodes:
            process = running[node.node_id]
            assert process is not None
            _wait_ready(node, process.pid, deadline)
        if config.secure:
            _wait_secure_ready(config, deadline)
        return False
    _require_tool("java", "the broker needs Java 17 or newer")
    _check_formatted_ports(config)
    for node in missing:
        node.pid_file.unlink(missing_ok=True)
        _check_ports(node)
    _fetch_jars(config)
    admin_password = ""
    if config.secure:
        ensure_broker_tls(config.tls.folder, BROKER_CN)
        admin_password = _admin_password(config)
    for node in nodes:
        node.node_home.mkdir(parents=True, exist_ok=True)
        node.node_home.joinpath("log4j2.properties").write_text(log4j2_properties(node))
        _write_private_text(node.properties_file, server_properties(node, admin_password))
    _format_storage(nodes, admin_password)
    _formatted_marker(config).write_text(config.layout + "\n")
    pids = {node.node_id: _spawn(node) for node in missing}
    for node in nodes:
        process = running[node.node_id]
        _wait_ready(node, pids[node.node_id] if process is None else process.pid, deadline)
    if config.secure:
        _wait_secure_ready(config, deadline)
    return True


def _auto_stop_marker(config: LocalBrokerConfig) -> Path:
    return config.home / "auto-stop"


def _borrowers(config: LocalBrokerConfig) -> Path:
    return config.home / "borrowers"


def _live_borrowers(config: LocalBrokerConfig) -> list[int]:
    """Pids of processes that borrowed the broker and still run; dead ones are forgotten."""
    alive = []
    for lease in _borrowers(config).glob("*"):
        try:
            pid = int(lease.name)
        except ValueError:
            lease.unlink(missing_ok=True)
            continue
        if psutil.pid_exists(pid):
            alive.append(pid)
        else:
            lease.unlink(missing_ok=True)
    return alive


def _running_nodes(config: LocalBrokerConfig) -> list[tuple[LocalBrokerConfig, int]]:
    found = []
    for node in config.nodes():
        process = _broker_process(node)
        if process is not None:
            found.append((node, process.pid))
    return found


@contextlib.contextmanager
def borrowed(config: LocalBrokerConfig) -> Iterator[str]:
    """Use the broker for the length of a block (a test session); yields the bootstrap.

    Starts it if needed. On exit it is stopped only when a borrower started it
    and no other live process still borrows it, so parallel test sessions share
    one broker safely and a broker started with ``start`` is never stopped here.
    """
    lease = _borrowers(config) / str(os.getpid())
    with _home_lock(config):
        if _start_locked(config):
            _auto_stop_marker(config).write_text("started by a test session\n")
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.touch()
    try:
        yield config.bootstrap
    finally:
        with _home_lock(config):
            lease.unlink(missing_ok=True)
            marker = _auto_stop_marker(config)
            if marker.exists() and not _live_borrowers(config):
                _terminate_all(_running_nodes(config), config.stop_timeout_s)
                marker.unlink(missing_ok=True)


def stop(config: LocalBrokerConfig) -> bool:
    """Stop every node of this home. Returns False when none was running (idempotent)."""
    with _home_lock(config):
        _auto_stop_marker(config).unlink(missing_ok=True)
        running = _running_nodes(config)
        if not running:
            for node in config.nodes():
                node.pid_file.unlink(missing_ok=True)
            return False
        _terminate_all(running, config.stop_timeout_s)
        return True


def reset(config: LocalBrokerConfig) -> None:
    """Stop the broker and delete its data (topics, KRaft metadata, credentials); jars and
    the local CA stay."""
    stop(config)
    with _home_lock(config):
        for node in config.nodes():
            shutil.rmtree(node.data, ignore_errors=True)
        shutil.rmtree(config.home / "data", ignore_errors=True)
        config.admin_password_file.unlink(missing_ok=True)
        _formatted_marker(config).unlink(missing_ok=True)


def status(config: LocalBrokerConfig) -> BrokerStatus:
    """Whether every node of this home runs and answers."""
    pids: list[int | None] = []
    notes: list[str] = []
    for node in config.nodes():
        process = _broker_process(node)
        label = f"node {node.node_id}: " if config.brokers > 1 else ""
        if process is None:
            pids.append(None)
            note = "stopped"
            if not port_is_free(node.host, node.client_port):
                note = f"stopped (but port {node.client_port} is taken by something else)"
            notes.append(label + note)
            continue
        pids.append(process.pid)
        if not answers(node):
            notes.append(label + "not answering")
    first = pids[0] if pids else None
    if notes:
        if all(pid is None for pid in pids):
            first = None
        return BrokerStatus(
            False, config.bootstrap, first, config.home, "; ".join(notes), tuple(pids)
        )
    return BrokerStatus(True, config.bootstrap, first, config.home, "", tuple(pids))


__all__ = [
    "PROJECT_ROOT",
    "BrokerError",
    "BrokerPortInUseError",
    "BrokerStartTimeoutError",
    "BrokerStatus",
    "LocalBrokerConfig",
    "admin_connection",
    "answers",
    "answers_at",
    "borrowed",
    "decode_metadata_brokers",
    "encode_metadata_request",
    "fetch_jars",
    "jars_ready",
    "node_pid",
    "recorded_layout",
    "reset",
    "server_properties",
    "start",
    "status",
    "stop",
]

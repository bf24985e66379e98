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
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil

from deltas.errors import KubedeltaError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The checkout this module belongs to: home of ``deploy/kafka/pom.xml`` and ``.kubedelta/``."""

MIB = 1024 * 1024


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
    """Folder holding jars, data, config, logs and pid file; one broker per home."""
    port: int = 9092
    """Client (PLAINTEXT) listener port on 127.0.0.1: the bootstrap address clients use."""
    controller_port: int = 9093
    """KRaft controller listener port on 127.0.0.1 (same JVM; clients never use it)."""
    host: str = "127.0.0.1"
    """Listen address. Loopback only: this broker has no authentication."""
    heap: str = "512m"
    """JVM max heap (-Xmx). Enough for our ~8 MiB max messages and the log cleaner."""
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LocalBrokerConfig:
        """Defaults overridden by ``KUBEDELTA_HOME`` (the home is ``$KUBEDELTA_HOME/kafka``),
        ``KUBEDELTA_KAFKA_PORT`` and ``KUBEDELTA_KAFKA_CONTROLLER_PORT`` (default port + 1)."""
        base = environ.get("KUBEDELTA_HOME")
        home = Path(base).resolve() / "kafka" if base else cls.home
        port = _port_from(environ, "KUBEDELTA_KAFKA_PORT", cls.port)
        controller_port = _port_from(environ, "KUBEDELTA_KAFKA_CONTROLLER_PORT", port + 1)
        return cls(home=home, port=port, controller_port=controller_port)

    def __post_init__(self) -> None:
        if self.port == self.controller_port:
            raise BrokerError(f"client and controller ports must differ (both {self.port})")
        for name, value in (("port", self.port), ("controller_port", self.controller_port)):
            if not 0 < value < 65536:
                raise BrokerError(f"{name} {value} is not a TCP port")

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def libs(self) -> Path:
        return self.jars if self.jars is not None else self.home / "libs"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def server_log(self) -> Path:
        return self.home / "logs" / "server.log"

    @property
    def stdout_log(self) -> Path:
        return self.home / "logs" / "stdout.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"


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


# ---------------------------------------------------------------- pure parts


def server_properties(config: LocalBrokerConfig) -> str:
    """The broker's ``server.properties``: one combined broker+controller node on loopback."""
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": 1,
        "controller.quorum.bootstrap.servers": f"{config.host}:{config.controller_port}",
        "listeners": (
            f"PLAINTEXT://{config.host}:{config.port},CONTROLLER://{config.host}:{config.controller_port}"
        ),
        "advertised.listeners": f"PLAINTEXT://{config.host}:{config.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(config.data),
        # Our producers create their topics (compacted, partition count chosen).
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": 1,
        "min.insync.replicas": 1,
        # One node: every internal topic has one replica; few partitions so the
        # first consumer group / transaction does not wait for 50 partitions.
        "offsets.topic.replication.factor": 1,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": 1,
        "transaction.state.log.min.isr": 1,
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": 1,
        "share.coordinator.state.topic.min.isr": 1,
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
        # Small, shared machine.
        "num.network.threads": 2,
        "num.io.threads": 4,
        "background.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
    }
    lines = ["# Written by kubedelta (plumbing/broker.py) on every start; edits are overwritten."]
    lines += [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


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
        f"-Dlog4j2.configurationFile={config.home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={config.server_log.parent}",
        "-cp",
        f"{config.libs}/*",
        main_class,
        *args,
    ]


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (as kafka-storage makes)."""
    return urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")


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


def answers(config: LocalBrokerConfig, timeout_s: float = 2.0) -> bool:
    """True when the broker on this config's client port answers."""
    return answers_at(config.host, config.port, timeout_s)


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
    """The live broker process recorded in this home's pid file, if it really is ours."""
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
    # Guard against pid reuse: the command line names this home's properties file.
    if "kafka.Kafka" in cmdline and str(config.properties_file) in cmdline:
        return process
    return None


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


def _format_storage(config: LocalBrokerConfig) -> None:
    """First start only: write the KRaft metadata (cluster id, this node as sole voter)."""
    if (config.data / "meta.properties").exists():
        return
    config.data.mkdir(parents=True, exist_ok=True)
    command = java_command(
        config,
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        random_cluster_id(),
        "-c",
        str(config.properties_file),
    )
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip().splitlines()[-30:]
        raise BrokerError("formatting the broker storage failed:\n" + "\n".join(output))


def _check_ports(config: LocalBrokerConfig) -> None:
    for name, port in (("client", config.port), ("controller", config.controller_port)):
        if port_is_free(config.host, port):
            continue
        # A real broker answers in milliseconds; do not hang on a silent squatter.
        other_kafka = answers_at(config.host, port, timeout_s=0.5)
        owner = "a Kafka broker from another home" if other_kafka else "another process"
        raise BrokerPortInUseError(
            f"{name} port {config.host}:{port} is taken by {owner}, not by the broker in "
            f"{config.home}. Stop it, or choose other ports with KUBEDELTA_KAFKA_PORT "
            "(and KUBEDELTA_KAFKA_CONTROLLER_PORT, default port + 1)."
        )


def _check_formatted_ports(config: LocalBrokerConfig) -> None:
    """KRaft stores the controller endpoint at format time; refuse to run on other ports."""
    marker = config.home / "formatted-for"
    wanted = f"{config.port} {config.controller_port}"
    if not (config.data / "meta.properties").exists():
        marker.unlink(missing_ok=True)
        return
    if marker.exists() and marker.read_text().strip() != wanted:
        raise BrokerError(
            f"the broker data in {config.data} was formatted for ports "
            f"{marker.read_text().strip()} (client controller), not {wanted}. "
            "Run `kubedelta kafka reset` to wipe it, or use another KUBEDELTA_HOME."
        )


def _spawn(config: LocalBrokerConfig) -> int:
    """Run the broker detached (own session, reparented to init); return its pid.

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
        cwd=config.home,
    )
    try:
        pid = int(result.stdout.strip())
    except ValueError as exc:
        raise BrokerError(f"could not launch the broker: {result.stderr.strip()}") from exc
    config.pid_file.write_text(f"{pid}\n")
    return pid


def _wait_ready(config: LocalBrokerConfig, pid: int) -> None:
    deadline = time.monotonic() + config.start_timeout_s
    while time.monotonic() < deadline:
        if answers(config, timeout_s=1.0):
            return
        if _broker_process(config) is None:
            raise BrokerError(
                f"the broker (pid {pid}) exited during start-up; last log lines:\n"
                + tail(config.stdout_log, 10)
                + "\n"
                + tail(config.server_log)
            )
        time.sleep(0.1)
    _terminate(config, pid)
    raise BrokerStartTimeoutError(
        f"the broker did not answer on {config.bootstrap} within {config.start_timeout_s:.0f} s "
        f"and was stopped; last lines of {config.server_log}:\n" + tail(config.server_log)
    )


def _terminate(config: LocalBrokerConfig, pid: int) -> None:
    """SIGTERM (Kafka shuts down cleanly), then SIGKILL after the stop timeout."""
    try:
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(config.stop_timeout_s)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(10)
    except psutil.NoSuchProcess:
        pass
    config.pid_file.unlink(missing_ok=True)


# ---------------------------------------------------------------- public API


def start(config: LocalBrokerConfig, *, pin: bool = False) -> str:
    """Start the broker unless it already runs; return its bootstrap address.

    Fetches the jars and formats the storage on first use. Raises BrokerError
    (java/maven missing, port taken, early exit) or BrokerStartTimeoutError.
    ``pin`` (what the CLI does) keeps a broker that a test session started
    running after that session ends (see :func:`borrowed`).
    """
    with _home_lock(config):
        _start_locked(config)
        if pin:
            _auto_stop_marker(config).unlink(missing_ok=True)
        return config.bootstrap


def _start_locked(config: LocalBrokerConfig) -> bool:
    """Start unless running (caller holds the home lock). True when this call started it."""
    running = _broker_process(config)
    if running is not None:
        _wait_ready(config, running.pid)
        return False
    config.pid_file.unlink(missing_ok=True)
    _require_tool("java", "the broker needs Java 17 or newer")
    _check_formatted_ports(config)
    _check_ports(config)
    _fetch_jars(config)
    config.home.joinpath("log4j2.properties").write_text(log4j2_properties(config))
    config.properties_file.write_text(server_properties(config))
    _format_storage(config)
    (config.home / "formatted-for").write_text(f"{config.port} {config.controller_port}\n")
    _wait_ready(config, _spawn(config))
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
                running = _broker_process(config)
                if running is not None:
                    _terminate(config, running.pid)
                marker.unlink(missing_ok=True)


def stop(config: LocalBrokerConfig) -> bool:
    """Stop this home's broker. Returns False when it was not running (stop is idempotent)."""
    with _home_lock(config):
        _auto_stop_marker(config).unlink(missing_ok=True)
        running = _broker_process(config)
        if running is None:
            config.pid_file.unlink(missing_ok=True)
            return False
        _terminate(config, running.pid)
        return True


def reset(config: LocalBrokerConfig) -> None:
    """Stop the broker and delete its data (topics, KRaft metadata); jars stay cached."""
    stop(config)
    with _home_lock(config):
        shutil.rmtree(config.data, ignore_errors=True)
        (config.home / "formatted-for").unlink(missing_ok=True)


def status(config: LocalBrokerConfig) -> BrokerStatus:
    """Whether this home's broker runs and answers."""
    process = _broker_process(config)
    if process is None:
        note = "stopped"
        if not port_is_free(config.host, config.port):
            note = f"stopped (but port {config.port} is taken by something else)"
        return BrokerStatus(False, config.bootstrap, None, config.home, note)
    if not answers(config):
        return BrokerStatus(False, config.bootstrap, process.pid, config.home, "not answering")
    return BrokerStatus(True, config.bootstrap, process.pid, config.home)


__all__ = [
    "PROJECT_ROOT",
    "BrokerError",
    "BrokerPortInUseError",
    "BrokerStartTimeoutError",
    "BrokerStatus",
    "LocalBrokerConfig",
    "answers",
    "answers_at",
    "borrowed",
    "decode_metadata_brokers",
    "encode_metadata_request",
    "fetch_jars",
    "jars_ready",
    "reset",
    "server_properties",
    "start",
    "status",
    "stop",
]

"""Who may do what: ACL sets per role, principal names, SCRAM salting, Secret manifests,
the local CA, and the secure / multi-node broker settings. Pure: no broker."""

from __future__ import annotations

import base64
import hashlib
import ssl
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from deltas.errors import ConfigError, DeltaFormatError
from kubedelta.cmd_produce import ProduceSettings
from plumbing import broker, certs
from plumbing.broker import BrokerError, LocalBrokerConfig
from plumbing.identity import (
    CREDENTIALS_SECRET,
    Operation,
    PatternType,
    ProducerCredentials,
    ResourceType,
    cluster_user,
    consumer_acls,
    consumer_user,
    new_password,
    producer_acls,
    render_yaml,
    scram_credential,
    secret_manifests,
    settings_from_manifests,
)


def test_a_cluster_may_write_and_describe_only_its_own_literal_topic() -> None:
    acls = producer_acls("alpha", read_back=False)
    assert {(a.resource_type, a.resource_name, a.pattern, a.operation) for a in acls} == {
        (ResourceType.TOPIC, "kubedelta.cluster.alpha", PatternType.LITERAL, Operation.WRITE),
        (ResourceType.TOPIC, "kubedelta.cluster.alpha", PatternType.LITERAL, Operation.DESCRIBE),
        (ResourceType.CLUSTER, "kafka-cluster", PatternType.LITERAL, Operation.IDEMPOTENT_WRITE),
    }
    assert {a.principal for a in acls} == {"User:cluster-alpha"}
    assert all(a.operation is not Operation.READ for a in acls)  # no READ anywhere
    assert all(a.operation is not Operation.CREATE for a in acls)
    assert all(
        a.pattern is PatternType.LITERAL for a in acls
    )  # never a prefix: "alpha" != "alpha2"


def test_read_back_adds_read_on_the_own_topic_only() -> None:
    # On by default: a restarted producer reads its own topic back and resends only changes.
    assert producer_acls("alpha") == producer_acls("alpha", read_back=True)
    reads = [a for a in producer_acls("alpha", read_back=True) if a.operation is Operation.READ]
    assert [(a.resource_name, a.pattern) for a in reads] == [
        ("kubedelta.cluster.alpha", PatternType.LITERAL)
    ]


def test_a_consumer_reads_every_cluster_topic_and_writes_only_dead_letters() -> None:
    acls = consumer_acls("view1", prefix="p.cluster", dead_letter_topic="p.deadletter")
    by_op: dict[Operation, set[tuple[ResourceType, str, PatternType]]] = {}
    for a in acls:
        by_op.setdefault(a.operation, set()).add((a.resource_type, a.resource_name, a.pattern))
    assert by_op[Operation.READ] == {
        (ResourceType.TOPIC, "p.cluster.", PatternType.PREFIXED),
        (ResourceType.GROUP, "kubedelta", PatternType.PREFIXED),
    }
    assert by_op[Operation.WRITE] == {(ResourceType.TOPIC, "p.deadletter", PatternType.LITERAL)}
    assert {a.principal for a in acls} == {"User:consumer-view1"}


@pytest.mark.parametrize("bad", ["", "A", "a_b", "a.b", "-a", "a\n", "x" * 64])
def test_principal_names_are_dns_labels(bad: str) -> None:
    with pytest.raises(DeltaFormatError):
        cluster_user(bad)
    with pytest.raises(ConfigError):
        consumer_user(bad)


def test_scram_credentials_are_salted_pbkdf2_and_never_the_password() -> None:
    salt = b"s" * 32
    cred = scram_credential("cluster-a", "pencil", salt=salt, iterations=4096)
    assert cred.salted_password == hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 4096)
    assert b"pencil" not in cred.salted_password + cred.salt
    assert (cred.mechanism_code, cred.iterations) == (2, 4096)
    assert scram_credential("u", "pencil").salt != scram_credential("u", "pencil").salt
    with pytest.raises(ConfigError):
        scram_credential("u", "p", iterations=1000)
    with pytest.raises(ConfigError):
        scram_credential("u", "p", mechanism="PLAIN")


def test_passwords_are_long_random_and_safe_in_jaas_and_yaml() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 43 and p.replace("-", "").replace("_", "").isalnum() for p in passwords)


def _credentials(**extra: str | bool) -> ProducerCredentials:
    return ProducerCredentials(
        cluster="alpha",
        bootstrap="kafka.example:9093",
        username="cluster-alpha",
        password="pw-" + "x" * 40,
        ca_pem="-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
        **extra,  # type: ignore[arg-type]
    )


def test_secret_manifest_carries_the_credentials_and_the_ca() -> None:
    creds = _credentials(secret_hash_key="h" * 43)
    text = render_yaml(secret_manifests(creds, namespace="ops"))
    (doc,) = yaml.safe_load_all(text)
    assert (doc["kind"], doc["metadata"]["name"]) == ("Secret", CREDENTIALS_SECRET)
    assert doc["metadata"]["namespace"] == "ops"
    assert doc["metadata"]["labels"]["kubedelta.io/cluster"] == "alpha"
    assert "pw-" not in text  # base64 data, not stringData
    data = {k: base64.b64decode(v).decode() for k, v in doc["data"].items()}
    assert data["username"] == "cluster-alpha" and data["password"] == creds.password
    assert "BEGIN CERTIFICATE" in data["ca.crt"]
    assert data["secret-hash-key"] == "h" * 43
    settings = settings_from_manifests(text)
    assert settings == creds.settings()
    assert settings["KUBEDELTA_RESTORE"] == "true"  # READ on its own topic: read-back on
    no_read = _credentials(read_back=False).settings()
    assert no_read["KUBEDELTA_RESTORE"] == "false"  # no READ: no read-back


def test_secret_matches_what_the_producer_deployment_reads() -> None:
    root = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "producer"
    deployment = yaml.safe_load((root / "deployment.yaml").read_text())
    template = yaml.safe_load((root / "secret.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
    (doc,) = secret_manifests(_credentials(secret_hash_key="k" * 43))
    assert doc["metadata"]["name"] == template["metadata"]["name"]
    assert doc["metadata"]["namespace"] == template["metadata"]["namespace"]
    assert {r["name"] for r in refs} == {doc["metadata"]["name"]}
    assert {r["key"] for r in refs} <= set(doc["data"])
    assert set(template["stringData"]) <= set(doc["data"])


def test_mtls_secret_adds_the_client_certificate() -> None:
    creds = _credentials(client_cert_pem="CERT", client_key_pem="KEY")
    (doc,) = secret_manifests(creds)
    assert {"ca.crt", "tls.crt", "tls.key"} <= set(doc["data"])
    assert creds.settings()["KUBEDELTA_KAFKA_SSL_KEYFILE"].endswith("/tls.key")


def test_the_producer_reads_the_secret_settings_from_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in _credentials().settings().items():
        monkeypatch.setenv(key, value)
    settings = ProduceSettings()
    kafka = settings.kafka()
    assert (kafka.security_protocol, kafka.sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (kafka.sasl_username, kafka.sasl_password) == ("cluster-alpha", "pw-" + "x" * 40)
    assert kafka.ssl_cafile == "/etc/kubedelta/kafka/ca.crt"
    assert settings.cluster_names() == ("alpha",)
    assert settings.restore is True


# ---------------------------------------------------------------- the local CA


def test_broker_certificate_is_signed_by_the_ca_for_loopback(tmp_path: Path) -> None:
    files = certs.ensure_broker_tls(tmp_path / "tls", "kubedelta-broker")
    cert = x509.load_pem_x509_certificate(files.broker_cert.read_bytes())
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert certs.common_name_of(files.broker_cert.read_bytes()) == "kubedelta-broker"
    for secret in (files.ca_key, files.broker_key, files.broker_keystore):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # Python's TLS stack accepts the chain, as clients will.
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.load_cert_chain(str(files.broker_cert), str(files.broker_key))
    before = files.broker_keystore.read_bytes()
    assert certs.ensure_broker_tls(files.folder, "kubedelta-broker") == files
    assert files.broker_keystore.read_bytes() == before  # made once


def test_client_certificates_come_from_the_same_ca(tmp_path: Path) -> None:
    files = certs.ensure_broker_tls(tmp_path / "tls", "kubedelta-broker")
    client = certs.issue_client(files, "cluster-alpha")
    cert = x509.load_pem_x509_certificate(client.cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(files.ca_cert.read_bytes()))
    assert certs.common_name_of(client.cert_pem) == "cluster-alpha"
    with pytest.raises(certs.CertificateError):
        certs.issue_client(certs.TlsFiles(tmp_path / "none"), "x")


# ---------------------------------------------------------------- broker settings


def _props(config: LocalBrokerConfig, password: str = "") -> dict[str, str]:
    lines = broker.server_properties(config, password).splitlines()
    return dict(line.split("=", 1) for line in lines if not line.startswith("#"))


def test_secure_broker_settings(tmp_path: Path) -> None:
    config = LocalBrokerConfig(home=tmp_path, port=19092, controller_port=19093, secure=True)
    settings = _props(config, "adminpw")
    assert settings["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert settings["listener.security.protocol.map"] == "SASL_SSL:SASL_SSL,CONTROLLER:SSL"
    assert settings["inter.broker.listener.name"] == "SASL_SSL"
    assert settings["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert settings["authorizer.class.name"].endswith("StandardAuthorizer")
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    assert settings["super.users"] == "User:kubedelta-admin;User:kubedelta-broker"
    assert settings["listener.name.controller.ssl.client.auth"] == "required"
    assert settings["ssl.client.auth"] == "none"
    assert settings["ssl.keystore.type"] == "PEM"
    assert 'password="adminpw"' in settings["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    mtls = _props(LocalBrokerConfig(home=tmp_path, secure=True, mtls=True))
    assert mtls["ssl.client.auth"] == "required"
    with pytest.raises(BrokerError, match="mtls needs secure"):
        LocalBrokerConfig(home=tmp_path, mtls=True)


def test_three_node_settings_replicate_three_ways(tmp_path: Path) -> None:
    cluster = LocalBrokerConfig(home=tmp_path, port=19100, controller_port=19110, brokers=3)
    assert cluster.bootstrap == "127.0.0.1:19100,127.0.0.1:19101,127.0.0.1:19102"
    node = cluster.node(2)
    settings = _props(node)
    assert settings["node.id"] == "2"
    assert settings["listeners"] == "PLAINTEXT://127.0.0.1:19101,CONTROLLER://127.0.0.1:19111"
    assert settings["controller.quorum.voters"] == (
        "1@127.0.0.1:19110,2@127.0.0.1:19111,3@127.0.0.1:19112"
    )
    assert settings["default.replication.factor"] == "3"
    assert settings["min.insync.replicas"] == "2"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["unclean.leader.election.enable"] == "false"
    assert settings["log.dirs"] == str(tmp_path / "node-2" / "data")
    assert node.pid_file == tmp_path / "node-2" / "broker.pid"
    assert [n.client_port for n in cluster.nodes()] == [19100, 19101, 19102]


def test_node_port_ranges_must_not_overlap(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="must differ"):
        LocalBrokerConfig(home=tmp_path, port=19100, controller_port=19102, brokers=3)
    assert LocalBrokerConfig.from_env({}, brokers=3).controller_port == 9095
    with pytest.raises(BrokerError):
        LocalBrokerConfig(home=tmp_path, brokers=10)


def test_the_home_remembers_its_layout(tmp_path: Path) -> None:
    formatted = LocalBrokerConfig(
        home=tmp_path, port=19200, controller_port=19210, brokers=3, secure=True, mtls=True
    )
    (tmp_path / "formatted-for").write_text(formatted.layout + "\n")
    found = broker.recorded_layout(LocalBrokerConfig(home=tmp_path))
    assert (found.port, found.controller_port, found.brokers) == (19200, 19210, 3)
    assert (found.secure, found.mtls) == (True, True)
    plain = LocalBrokerConfig(home=tmp_path / "other")
    assert broker.recorded_layout(plain) == plain  # never formatted: unchanged


def test_a_cluster_home_is_not_started_as_a_single_broker(tmp_path: Path) -> None:
    cluster = LocalBrokerConfig(home=tmp_path, port=19300, controller_port=19310, brokers=3)
    (tmp_path / "node-1" / "data").mkdir(parents=True)
    (tmp_path / "node-1" / "data" / "meta.properties").write_text("node.id=1\n")
    (tmp_path / "formatted-for").write_text(cluster.layout + "\n")
    single = LocalBrokerConfig(home=tmp_path, port=19300, controller_port=19301)
    with pytest.raises(BrokerError, match="kafka reset"):
        broker.start(single)
    assert (tmp_path / "formatted-for").exists()

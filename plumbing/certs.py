"""The local certificate authority of a secure development broker.

``ensure_broker_tls`` makes, once per broker home, a CA and a broker
certificate (SAN 127.0.0.1, ::1, localhost) signed by it, as PEM files Kafka
reads directly (``ssl.keystore.type=PEM``). ``issue_client`` signs client
certificates (mTLS) with the same CA.

This CA exists for one machine's test and demo brokers. Its key sits
unencrypted in the broker home (mode 0600): anyone who can read that folder
can mint certificates the broker trusts. Production brokers use the
organisation's own PKI; docs/security.md says what this CA is and is not.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deltas.errors import KubedeltaError

CA_CN = "kubedelta local development CA"
VALID_DAYS = 825
"""Leaf lifetime (Apple's and browsers' upper bound); the CA lives ten years."""


class CertificateError(KubedeltaError):
    """The local CA or a certificate could not be made or read."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM private key (PKCS#8, unencrypted) and its PEM certificate."""

    key_pem: bytes
    cert_pem: bytes


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where a broker home keeps its TLS material (all PEM)."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        """Private key followed by the certificate chain: Kafka's PEM keystore format."""
        return self.folder / "broker.pem"

    @property
    def broker_cert(self) -> Path:
        return self.folder / "broker.crt"

    @property
    def broker_key(self) -> Path:
        return self.folder / "broker.key"


# ---------------------------------------------------------------- pure parts


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: fast to make (tests make several), supported by every JDK and OpenSSL.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(common_name: str = CA_CN, *, now: dt.datetime | None = None) -> KeyPair:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    now = now or dt.datetime.now(dt.UTC)
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def issue(
    ca: KeyPair,
    common_name: str,
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = True,
    client: bool = True,
    now: dt.datetime | None = None,
) -> KeyPair:
    """A leaf certificate signed by ``ca`` for ``common_name`` with the given SANs."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
        ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    except ValueError as exc:
        raise CertificateError("the CA key or certificate is not valid PEM") from exc
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError("the CA key is not an EC key")
    key = _new_key()
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return KeyPair(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def common_name_of(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# ---------------------------------------------------------------- thin I/O


def _write_private(path: Path, data: bytes) -> None:
    """Create with mode 0600 from the start (no window where the key is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_ca(files: TlsFiles) -> KeyPair:
    try:
        return KeyPair(files.ca_key.read_bytes(), files.ca_cert.read_bytes())
    except FileNotFoundError as exc:
        raise CertificateError(
            f"no local CA in {files.folder}: start the broker with --secure first"
        ) from exc


def ensure_broker_tls(folder: Path, broker_cn: str) -> TlsFiles:
    """Make the CA and the broker certificate unless this folder already has them."""
    files = TlsFiles(folder)
    if files.broker_keystore.exists() and files.ca_cert.exists():
        return files
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    ca = make_ca() if not files.ca_key.exists() else load_ca(files)
    leaf = issue(
        ca, broker_cn, dns_names=("localhost",), ip_addresses=("127.0.0.1", "::1"), client=True
    )
    _write_private(files.ca_key, ca.key_pem)
    files.ca_cert.write_bytes(ca.cert_pem)
    _write_private(files.broker_key, leaf.key_pem)
    files.broker_cert.write_bytes(leaf.cert_pem)
    _write_private(files.broker_keystore, leaf.key_pem + leaf.cert_pem + ca.cert_pem)
    return files


def issue_client(files: TlsFiles, common_name: str) -> KeyPair:
    """A client certificate (mTLS) for ``common_name``, signed by this home's CA."""
    return issue(load_ca(files), common_name, server=False, client=True)

"""Throw-away TLS material for tests: a CA, a server certificate for 127.0.0.1/localhost
and a client certificate, written as PEM files into a temporary directory (never committed)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA certificate
    server: Path  # server certificate + key (mongod's --tlsCertificateKeyFile)
    client: Path  # client certificate + key
    other_ca: Path  # a CA that signed none of them


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    cn: str,
    hosts: list[str],
    server: bool,
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM) + pem_key


def make_certs(
    directory: Path, server_hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> Certs:
    ca_key, ca = _ca("streamer test CA")
    _, other = _ca("some other CA")
    paths = Certs(
        directory / "ca.pem", directory / "server.pem", directory / "client.pem",
        directory / "other-ca.pem",
    )  # fmt: skip
    paths.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths.other_ca.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    paths.server.write_bytes(_leaf(ca_key, ca, "mongosim", list(server_hosts), server=True))
    paths.client.write_bytes(_leaf(ca_key, ca, "streamer", [], server=False))
    return paths


# A host name no test connects to: a server certificate issued for it alone fails the
# client's host name check against 127.0.0.1 (issue 14, step 5).
OTHER_HOST = "db.example.net"


def make_certs_for_another_host(directory: Path) -> Certs:
    """Like :func:`make_certs`, but the server's certificate names only ``OTHER_HOST``:
    the right CA signed it, so only the host name check can refuse it."""
    return make_certs(directory, server_hosts=(OTHER_HOST,))

"""``streamer demo --auth --tls`` (``make run AUTH=1 TLS=1``): the demo as production runs.

With ``--tls``, a throw-away CA signs a server certificate for 127.0.0.1/localhost and a
client certificate; mongosim requires TLS and a client certificate, and every client
(the service, the demo's writer) uses ``STREAMER_TLS_*``. With ``--auth``, mongosim
requires SCRAM; a ``root`` user is created through the localhost exception, bootstrap
runs as root (the privileged job the README describes), and the service runs as a
``streamer`` user holding only the README's least-privilege role (``streamer.commands.role``),
with ``bootstrap_on_start`` off.

Everything lives in one temporary directory, removed when the demo ends: the keys, and
``streamer.env``, the settings (password included, mode 0600) to run other ``streamer``
commands against the demo. Passwords are random and never printed or logged.

The certificates need the ``cryptography`` package, an optional extra
(``pip install 'mongo-streamer[demo]'``; ``make`` installs it) so the service's wheel and image
stay without it.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import ipaddress
import os
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from ..core.errors import SettingsError
from ..core.schema import load_schema
from ..mongo import Mongo
from ..runtime.bootstrap import run_bootstrap
from ..settings import Settings
from . import role

ROOT = "root"
SERVICE_USER = role.ROLE


@dataclass(frozen=True)
class DemoCerts:
    ca: Path
    server: Path  # certificate + key, mongosim's --tls-cert-key-file
    client: Path  # certificate + key, STREAMER_TLS_CERTIFICATE_KEY_FILE


NO_CRYPTOGRAPHY = (
    "--tls needs the cryptography package for its throw-away certificates: "
    "pip install 'mongo-streamer[demo]' (make run installs it)"
)


def require_cryptography() -> None:
    """Fail with one line, before the demo makes or prints anything, without the extra."""
    if importlib.util.find_spec("cryptography") is None:
        raise SettingsError(NO_CRYPTOGRAPHY)


def make_certs(directory: Path) -> DemoCerts:
    """A CA valid for a day, and a server and a client certificate it signed."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise SettingsError(NO_CRYPTOGRAPHY) from None

    now = dt.datetime.now(dt.UTC)

    def build(cn: str, key: Any, issuer: x509.Name | None = None) -> x509.CertificateBuilder:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    # Key usage and key identifiers: what a strict verifier (Python 3.13's default
    # VERIFY_X509_STRICT) requires of a CA and the certificates it signs.
    ca = (
        build("streamer demo CA", ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    def leaf(cn: str, usage: x509.ObjectIdentifier, names: list[x509.GeneralName]) -> bytes:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            build(cn, key, ca.subject)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(authority, critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        pem_key = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM) + pem_key

    loopback = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    certs = DemoCerts(directory / "ca.pem", directory / "server.pem", directory / "client.pem")
    certs.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    private(certs.server, leaf("mongosim", ExtendedKeyUsageOID.SERVER_AUTH, loopback))
    private(certs.client, leaf(SERVICE_USER, ExtendedKeyUsageOID.CLIENT_AUTH, []))
    return certs


def private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (keys, passwords)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def mongosim_options(certs: DemoCerts | None, auth: bool) -> dict[str, Any]:
    """MongoSim's keyword arguments: ``--auth`` and the TLS flags."""
    options: dict[str, Any] = {"auth": auth}
    if certs is not None:
        options |= {"tls_cert_key_file": certs.server, "tls_ca_file": certs.ca}
    return options


def tls_settings(certs: DemoCerts | None) -> dict[str, Any]:
    """The ``tls_*`` settings every client of the demo's mongosim uses."""
    if certs is None:
        return {}
    return {"tls": True, "tls_ca_file": certs.ca, "tls_certificate_key_file": certs.client}


def with_user(settings: Settings, user: str, password: str) -> Settings:
    uri = settings.mongodb_uri.get_secret_value()
    login = uri.replace("mongodb://", f"mongodb://{user}:{password}@", 1)
    return settings.model_copy(update={"mongodb_uri": SecretStr(login)})


@dataclass(frozen=True)
class Users:
    root: Settings  # the demo's writer and bootstrap
    service: Settings  # the service, under the least-privilege role


async def set_up_users(anonymous: Settings, directory: Path) -> Users:
    """Root through the localhost exception, bootstrap as root, the role's user; one
    printed line each. Writes ``streamer.env`` for running commands as the role."""
    root = with_user(anonymous, ROOT, secrets.token_urlsafe(18))
    async with Mongo(anonymous.mongo_options()) as mongo:
        await mongo.command(
            {"createUser": ROOT, "pwd": password(root), "roles": ["root"]}, admin=True
        )
    print(f"user {ROOT!r} (role root) created through the localhost exception")
    async with Mongo(root.mongo_options()) as mongo:
        report = await run_bootstrap(
            mongo, load_schema(root.schema_path), check=False, replace_conflicting=False
        )
        print(f"bootstrap as {ROOT!r}: {len(report.actions)} change(s)")
        await mongo.command(role.create_role_command(anonymous.database), admin=True)
        service = with_user(anonymous, SERVICE_USER, secrets.token_urlsafe(18))
        await mongo.command(
            {
                "createUser": SERVICE_USER,
                "pwd": password(service),
                "roles": [{"role": role.ROLE, "db": "admin"}],
            },
            admin=True,
        )
    print(f"user {SERVICE_USER!r} (role {role.ROLE!r}, the README's least-privilege role) created")
    env = directory / "streamer.env"
    root_uri = root.mongodb_uri.get_secret_value()
    # Root's URI is a comment: sourced, the file sets the role's settings only.
    private(env, f"# root (bootstrap, the demo's writes): {root_uri}\n{env_file(service)}".encode())
    print(f"settings to run streamer commands as {SERVICE_USER!r} against the demo: {env}")
    # The role's user cannot change the schema: bootstrap was root's job.
    return Users(root, service.model_copy(update={"bootstrap_on_start": False}))


def password(settings: Settings) -> str:
    return urlsplit(settings.mongodb_uri.get_secret_value()).password or ""


def env_file(settings: Settings) -> str:
    """``STREAMER_*=value`` lines, each value quoted for the shell, so that
    ``set -a; . ./streamer.env; set +a`` exports them exactly (a password's ``&``, ``$``
    or quote included) and no secret ever goes on a command line."""
    values = {
        "STREAMER_MONGODB_URI": settings.mongodb_uri.get_secret_value(),
        "STREAMER_DATABASE": settings.database,
    }
    if settings.tls:
        values["STREAMER_TLS"] = "true"
        values["STREAMER_TLS_CA_FILE"] = str(settings.tls_ca_file)
        values["STREAMER_TLS_CERTIFICATE_KEY_FILE"] = str(settings.tls_certificate_key_file)
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())

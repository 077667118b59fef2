"""mongosim's TLS, as mongod's ``--tlsCertificateKeyFile``/``--tlsCAFile``: the flags the
README lists, through Motor over TCP. (The service over TLS: tests/integration.)"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest
from mongosim.process import MongoSimProcess
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError

from ..certs import make_certs

Sim = Callable[..., AbstractAsyncContextManager[Any]]


async def ping(uri: str, **options: Any) -> None:
    """One ping; ServerSelectionTimeoutError within a second if the handshake fails."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(
        uri, serverSelectionTimeoutMS=1000, **options
    )
    try:
        await client.admin.command("ping")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("allow_without", "present", "accepted"),
    [
        (False, True, True),
        (False, False, False),  # --tls-ca-file: a client certificate is required
        (True, False, True),  # ... unless connections without one are allowed
        (True, True, True),
    ],
    ids=["required-sent", "required-missing", "optional-missing", "optional-sent"],
)
async def test_a_ca_file_requires_a_client_certificate_unless_allowed_without(
    private_mongosim: Sim, tmp_path: Path, allow_without: bool, present: bool, accepted: bool
) -> None:
    certs = make_certs(tmp_path)
    async with private_mongosim(
        tls_cert_key_file=certs.server,
        tls_ca_file=certs.ca,
        tls_allow_connections_without_certificates=allow_without,
    ) as sim:
        assert "tls=true" in sim.uri
        options: dict[str, Any] = {"tlsCAFile": str(certs.ca)}
        if present:
            options["tlsCertificateKeyFile"] = str(certs.client)
        if accepted:
            await ping(sim.uri, **options)
        else:
            with pytest.raises(ServerSelectionTimeoutError):
                await ping(sim.uri, **options)


async def test_plain_tcp_is_refused_on_a_tls_port(private_mongosim: Sim, tmp_path: Path) -> None:
    """TLS is required on the one port (mongod's requireTLS), not merely offered."""
    certs = make_certs(tmp_path)
    async with private_mongosim(tls_cert_key_file=certs.server) as sim:
        await ping(sim.uri, tlsCAFile=str(certs.ca))
        with pytest.raises(ServerSelectionTimeoutError):
            await ping(sim.uri, tls=False)


async def test_the_command_line_starts_with_auth_and_tls(tmp_path: Path) -> None:
    """``mongosim --auth --tls-cert-key-file F --tls-ca-file CA``: the README's usage line.
    Its ready line's URI asks for TLS; the first user comes through the localhost
    exception, and then a login is needed."""
    certs = make_certs(tmp_path)
    flags = ["--auth", "--tls-cert-key-file", str(certs.server), "--tls-ca-file", str(certs.ca)]
    sim = MongoSimProcess(extra_args=flags)
    await sim.start()
    try:
        assert sim.uri.endswith("&tls=true"), sim.uri
        options: dict[str, Any] = {
            "tlsCAFile": str(certs.ca),
            "tlsCertificateKeyFile": str(certs.client),
        }
        anonymous: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri, **options)
        try:
            await anonymous.admin.command({"createUser": "u", "pwd": "pw", "roles": ["root"]})
            with pytest.raises(OperationFailure, match="requires authentication"):
                await anonymous.admin.command("listDatabases")
        finally:
            anonymous.close()
        await ping(sim.uri.replace("mongodb://", "mongodb://u:pw@", 1), **options)
    finally:
        assert await sim.stop() == 0

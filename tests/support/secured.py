"""mongosim with ``--auth`` and TLS (client certificates required), and the settings of
a user on it: the server the least-privilege and secured-operations tests run against."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient

from streamer.settings import Settings

from ..certs import Certs, make_certs
from .service import test_settings

DATABASE = "myapp"
PASSWORD = "s3rvice-pw"  # a test secret: it must never appear in output


@dataclass
class Secured:
    uri: str  # no credentials
    certs: Certs
    root: AsyncIOMotorClient[Any]

    def user_uri(self, user: str, password: str) -> str:
        return self.uri.replace("mongodb://", f"mongodb://{user}:{password}@", 1)

    def settings(self, driver: str, user: str = "streamer", **overrides: Any) -> Settings:
        tls: dict[str, Any] = {
            "tls": True,
            "tls_ca_file": self.certs.ca,
            "tls_certificate_key_file": self.certs.client,
        }
        uri = self.user_uri(user, overrides.pop("password", PASSWORD))
        return test_settings(uri, DATABASE, driver=driver, **{**tls, **overrides})

    async def add_service_user(
        self, privileges: list[dict[str, Any]], user: str = "streamer"
    ) -> None:
        await self.root.admin.command({"createRole": user, "privileges": privileges, "roles": []})
        await self.root.admin.command(
            {"createUser": user, "pwd": PASSWORD, "roles": [{"role": user, "db": "admin"}]}
        )


# Named apart from their fixture names, so that a test module imports them without its
# test arguments shadowing the import.
@pytest.fixture(name="secured")
async def secured_fixture(
    private_mongosim: Callable[..., AbstractAsyncContextManager[Any]], tmp_path: Path
) -> AsyncIterator[Secured]:
    """mongosim with auth and TLS; a root user made through the localhost exception."""
    certs = make_certs(tmp_path)
    options: dict[str, Any] = {
        "tlsCAFile": str(certs.ca),
        "tlsCertificateKeyFile": str(certs.client),
    }
    async with private_mongosim(
        auth=True, tls_cert_key_file=certs.server, tls_ca_file=certs.ca
    ) as sim:
        anonymous: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri, **options)
        await anonymous.admin.command({"createUser": "root", "pwd": "rootpw", "roles": ["root"]})
        anonymous.close()
        root_uri = sim.uri.replace("mongodb://", "mongodb://root:rootpw@", 1)
        root: AsyncIOMotorClient[Any] = AsyncIOMotorClient(root_uri, **options)
        try:
            yield Secured(sim.uri, certs, root)
        finally:
            root.close()


@pytest.fixture(name="driver", params=["motor", "pymongo"])
def driver_fixture(request: pytest.FixtureRequest) -> str:
    return str(request.param)

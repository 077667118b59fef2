"""Shared fixtures: one mongosim per test session, or a real replica set via MONGODB_URI.

Set ``MONGODB_URI=mongodb://host:port/?replicaSet=rs0`` to run the same suite against a
real MongoDB replica set; tests that need fail points skip cleanly where the server
refuses ``configureFailPoint``, and tests that need a private mongosim (a tiny oplog,
a restart) skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import OperationFailure

from tests.support.failpoints import FailPoint
from tests.support.service_process import kill_leftovers

REAL_URI = os.environ.get("MONGODB_URI")


@pytest.fixture(scope="session")
async def mongo_uri() -> AsyncIterator[str]:
    """The replica set every test talks to."""
    if REAL_URI:
        yield REAL_URI
        return
    async with ThreadedMongoSim(port=0, ttl_monitor_interval=1.0, traced=False) as sim:
        yield sim.uri


@pytest.fixture(scope="session")
async def client(mongo_uri: str) -> AsyncIterator[AsyncIOMotorClient[Any]]:
    c: AsyncIOMotorClient[Any] = AsyncIOMotorClient(mongo_uri, serverSelectionTimeoutMS=5000)
    await c.admin.command("ping")
    yield c
    c.close()


@pytest.fixture
async def db(client: AsyncIOMotorClient[Any]) -> AsyncIterator[AsyncIOMotorDatabase[Any]]:
    """A fresh database per test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)


@pytest.fixture
def fail_point(client: AsyncIOMotorClient[Any]) -> FailPoint:
    """``async with fail_point({...configureFailPoint...}):`` — skips where refused."""

    @asynccontextmanager
    async def configure(spec: Mapping[str, Any]) -> AsyncIterator[None]:
        name = spec.get("configureFailPoint", "failCommand")
        command = {
            "configureFailPoint": name,
            **{k: v for k, v in spec.items() if k != "configureFailPoint"},
        }
        try:
            await client.admin.command(command)
        except OperationFailure as exc:
            if exc.code in (59, 13, 2) or "enableTestCommands" in str(exc):
                pytest.skip(f"server refuses configureFailPoint: {exc}")
            raise
        try:
            yield
        finally:
            await client.admin.command({"configureFailPoint": name, "mode": "off"})

    return configure


@pytest.fixture
def private_mongosim() -> Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]:
    """A mongosim of the test's own (tiny oplog, data dir...); skipped against a real server."""
    if REAL_URI:
        pytest.skip("needs a private mongosim (server options a shared replica set cannot take)")

    def start(**options: Any) -> AbstractAsyncContextManager[ThreadedMongoSim]:
        return ThreadedMongoSim(port=0, traced=False, **options)

    return start


@pytest.fixture(autouse=True)
async def no_leftover_services() -> AsyncIterator[None]:
    """A test that fails halfway leaves no `streamer run` process behind."""
    yield
    await kill_leftovers()

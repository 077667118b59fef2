"""Fixtures for the service's integration tests: a connected :class:`Mongo` per test."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase
from pydantic import SecretStr

from streamer.mongo import Mongo
from streamer.runtime.supervisor import Service
from streamer.settings import Settings


def test_settings(uri: str, database: str, **overrides: Any) -> Settings:
    """Settings for tests: the given database, with timings short enough for tests."""
    values: dict[str, Any] = {
        "mongodb_uri": SecretStr(uri),
        "database": database,
        "max_batch_wait_ms": 50,
        "idle_checkpoint_interval_s": 0.2,
        "retry_max_s": 10,
        "server_selection_timeout_ms": 3000,
    }
    return Settings(**{**values, **overrides})


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


@pytest.fixture(params=["motor", "pymongo"])
def settings(
    request: pytest.FixtureRequest, mongo_uri: str, db: AsyncIOMotorDatabase[Any]
) -> Settings:
    """Settings for the test's own database, once per driver behind the seam."""
    return test_settings(mongo_uri, db.name, driver=request.param)


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[Mongo]:
    async with Mongo(settings.mongo_options()) as m:
        yield m


RunService = Callable[..., AbstractAsyncContextManager[Service]]


@asynccontextmanager
async def run_service(settings: Settings, **options: Any) -> AsyncIterator[Service]:
    """The service running as a task of the test's loop; stopped (gracefully) on exit."""
    service = Service(settings, **{"http_port": 0, **options})
    task = asyncio.create_task(service.run())
    ready = asyncio.create_task(service.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        raise RuntimeError(f"service exited early with {task.result()}")
    try:
        await streaming(service)
        yield service
    finally:
        service.stop()
        code = await asyncio.wait_for(task, 30)
        assert code == 0, f"service exit code {code}"


async def streaming(service: Service, within_s: float = 20.0) -> None:
    """Wait until every stream has an owner (this instance or another) that is streaming."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        leases = await service.mongo.find("streamer_leases", {})
        checkpoints = await service.mongo.find("streamer_checkpoints", {"phase": "stream"})
        owned_here = service.watchers
        if (
            {d["_id"] for d in leases} >= set(service.streams)
            and {d["_id"] for d in checkpoints} >= set(service.streams)
            and all(
                w.checkpoint is not None and w.position is not None for w in owned_here.values()
            )
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the service did not start streaming")
        await asyncio.sleep(0.01)


@pytest.fixture
def service() -> RunService:
    """``async with service(settings) as svc:`` runs the service for the block."""
    return run_service


async def caught_up(
    db: AsyncIOMotorDatabase[Any],
    streams: tuple[str, ...] = ("orders", "inventory"),
    within_s: float = 20.0,
) -> None:
    """Wait until every stream's checkpoint covers every write made so far."""
    target = (await db.command("ping"))["operationTime"]
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        docs = {d["_id"]: d async for d in db.streamer_checkpoints.find({})}
        if all(
            name in docs
            and docs[name].get("phase") == "stream"
            and docs[name].get("position") is not None
            and docs[name]["position"] >= target
            for name in streams
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"streams did not catch up to {target}: {docs}")
        await asyncio.sleep(0.02)


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A TCP port something already listens on (on every address)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])

"""The service in the test's own event loop: settings for tests, running it, waiting on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
from motor.motor_asyncio import AsyncIOMotorDatabase
from pydantic import SecretStr

from streamer.core.partitions import parse_key, partitions_of
from streamer.runtime.supervisor import Service
from streamer.settings import Settings

from .polling import eventually


def test_settings(uri: str, database: str, **overrides: Any) -> Settings:
    """Settings for tests: the given database, with timings short enough for tests."""
    values: dict[str, Any] = {
        "mongodb_uri": SecretStr(uri),
        "database": database,
        "max_batch_wait_ms": 50,
        "idle_checkpoint_interval_s": 0.2,
        "fold_poll_s": 0.1,
        "retry_max_s": 10,
        "server_selection_timeout_ms": 3000,
    }
    return Settings(**{**values, **overrides})


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


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
    """Wait until every stream (every partition) has an owner, this instance or another,
    that is streaming."""

    async def every_stream_streams() -> bool:
        leases = await service.mongo.find("streamer_leases", {})
        checkpoints = await service.mongo.find("streamer_checkpoints", {"phase": "stream"})
        # Each stream's lease and checkpoint, or each partition's when split.
        units = set(service.owners)
        return (
            {d["_id"] for d in leases} >= units
            and {d["_id"] for d in checkpoints} >= units
            and all(
                w.checkpoint is not None and w.position is not None
                for w in service.watchers.values()
            )
        )

    await eventually(
        every_stream_streams,
        what="the service streaming (every stream leased and past its resync)",
        within_s=within_s,
        interval_s=0.01,
    )


async def caught_up(
    db: AsyncIOMotorDatabase[Any],
    streams: tuple[str, ...] = ("orders", "inventory"),
    within_s: float = 20.0,
    *,
    at: Any = None,
    folded: bool = True,
) -> None:
    """Wait until every stream's checkpoint (each partition's, for a split stream)
    covers every write made so far (or up to cluster time ``at``: the service's own
    writes move the cluster time too, which an idle stream's stored checkpoint covers
    only at its next idle save), and, unless ``folded`` is False, no share of a user's
    totals from those writes waits to be folded (a split orders stream:
    streamer.core.deltas)."""
    target = at if at is not None else (await db.command("ping"))["operationTime"]
    docs: dict[Any, Any] = {}
    counts = {
        d["_id"]: d["count"]
        async for d in db.streamer_partitionings.find({"_id": {"$in": list(streams)}})
    }
    names = sorted({parse_key(name).stream for name in streams})
    streams = tuple(key for name in streams for key in keys_of(name, counts.get(name, 1)))

    async def covered() -> bool:
        nonlocal docs
        # Only the named streams' checkpoints: in a benchmark the polls are server work
        # too, kept small beside the drain's.
        query = {"_id": {"$in": list(streams)}}
        docs = {d["_id"]: d async for d in db.streamer_checkpoints.find(query)}
        return all(
            name in docs
            and docs[name].get("phase") == "stream"
            and docs[name].get("position") is not None
            and docs[name]["position"] >= target
            for name in streams
        ) and not (
            folded
            and await db.streamer_totals_deltas.find_one(
                {"s": {"$in": names}, "at": {"$lte": target}}
            )
        )

    await eventually(
        covered,
        what=f"the streams caught up to {target}",
        within_s=within_s,
        interval_s=0.02,
        detail=lambda: docs,
    )


def keys_of(stream: str, count: int) -> list[str]:
    """The checkpoint and lease ids of ``stream`` read as ``count`` partitions."""
    return [p.key for p in partitions_of(stream, count)]


def partition_keys(count: int, streams: tuple[str, ...] = ("orders", "inventory")) -> list[str]:
    """Every partition's id when each of ``streams`` is read as ``count`` partitions."""
    return [key for stream in streams for key in keys_of(stream, count)]


async def get(service: Service, path: str, **headers: str) -> tuple[int, str, str]:
    """GET ``path`` from the service's HTTP server: status, content type, body."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{service.http.port}{path}", headers=headers) as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def until_status(
    service: Service, path: str, status: int, within_s: float = 20, saying: str = ""
) -> str:
    """Poll ``path`` until it answers ``status`` with ``saying`` in the body; the body."""
    code, body = 0, ""

    async def answers() -> bool:
        nonlocal code, body
        code, _, body = await get(service, path)
        return code == status and saying in body

    await eventually(
        answers,
        what=f"{path} answering {status}" + (f" with {saying!r}" if saying else ""),
        within_s=within_s,
        detail=lambda: f"{path} stayed {code}: {body}",
    )
    return body

"""Clients on a mongosim set and its members for the set's own tests: a Motor or a
PyMongo client that is closed when its block ends, a direct connection to one member, a
fail point set through one, and what a member's own engine holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import MongoClient, ReadPreference

from .polling import eventually

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]
# The tests decide every change of primary: a set that lost its majority never elects or
# steps down by itself (mongod's primary would step down after 10 s).
NO_ELECTIONS_MS = 600_000


def three_members(
    private_mongosim: Start, *, replication_delay_ms: float = 5, **options: Any
) -> AbstractAsyncContextManager[ThreadedMongoSim]:
    """A private set of three whose elections are only those the test triggers."""
    return private_mongosim(
        members=3,
        replication_delay_ms=replication_delay_ms,
        election_timeout_ms=NO_ELECTIONS_MS,
        **options,
    )


@asynccontextmanager
async def motor(uri: str, **options: Any) -> AsyncIterator[AsyncIOMotorClient[Any]]:
    """A Motor client on ``uri`` for the block, closed when it ends (however it ends)."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri, **options)
    try:
        yield client
    finally:
        client.close()


@asynccontextmanager
async def pymongo(uri: str, **options: Any) -> AsyncIterator[MongoClient[Any]]:
    """A synchronous PyMongo client on ``uri`` for the block (call it through
    ``asyncio.to_thread``), closed off the event loop when it ends."""
    client: MongoClient[Any] = MongoClient(uri, **options)
    try:
        yield client
    finally:
        await asyncio.to_thread(client.close)


def member(
    rs: ReplicaSet, index: int, **options: Any
) -> AbstractAsyncContextManager[AsyncIOMotorClient[Any]]:
    """A direct connection to member ``index`` alone (no discovery of the others)."""
    return motor(rs.uri_of(index), **options)


async def fail_point(rs: ReplicaSet, index: int, name: str, mode: Any) -> dict[str, Any]:
    """configureFailPoint ``name`` on member ``index``; its reply (``count``: how often the
    point fired)."""
    async with member(rs, index) as client:
        reply: dict[str, Any] = await client.admin.command("configureFailPoint", name, mode=mode)
        return reply


def has(rs: ReplicaSet, index: int, doc_id: Any, coll: str = "orders") -> bool:
    """Whether member ``index``'s own data holds document ``doc_id`` of ``app.<coll>``
    (read from its engine: no read concern or routing in between)."""
    found = rs.sim(index).engine.get_collection("app", coll)
    return found is not None and any(d.get("_id") == doc_id for d in found.docs.values())


async def until_member_has(rs: ReplicaSet, index: int, doc_id: Any, *, what: str) -> None:
    """Until member ``index`` (a secondary, say) answers a read of ``app.orders`` with
    document ``doc_id``."""
    async with member(rs, index) as client:
        orders = client.app.get_collection(
            "orders", read_preference=ReadPreference.SECONDARY_PREFERRED
        )
        await eventually(lambda: orders.find_one({"_id": doc_id}), what=what)

"""Stream leases: one owner at a time, on the server's clock."""

from __future__ import annotations

import asyncio
import contextlib

from streamer.leases import Leases
from streamer.mongo import Mongo
from streamer.settings import Settings

from .conftest import RunService


async def test_a_live_lease_keeps_others_out_until_it_expires_or_is_released(mongo: Mongo) -> None:
    """acquire/renew for the owner; None for others until expiry; release hands it over."""
    a, b = Leases(mongo, "a", ttl_s=0.3), Leases(mongo, "b", ttl_s=0.3)
    first = await a.acquire("orders")
    assert first is not None and first.owner == "a" and first.previous_owner is None
    assert await b.acquire("orders") is None
    assert await a.renew("orders") is not None
    assert await b.renew("orders") is None
    deadline = asyncio.get_running_loop().time() + 5
    taken = None
    while taken is None:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
        taken = await b.acquire("orders")
    assert taken.owner == "b" and taken.previous_owner == "a"
    assert await a.renew("orders") is None
    await b.release("orders")
    back = await a.acquire("orders")
    assert back is not None and back.previous_owner == "b"


async def test_a_standby_takes_over_when_the_owner_stops(
    settings: Settings, service: RunService
) -> None:
    """Two services: one owns both streams; stopping it hands them to the other."""
    fast = settings.model_copy(update={"lease_ttl_s": 1.0})
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(service(fast, instance_id="a"))
        first = contextlib.AsyncExitStack()
        b = await first.enter_async_context(service(fast, instance_id="b"))
        assert set(a.watchers) == {"orders", "inventory"} and not b.watchers
        await stack.aclose()  # a stops gracefully and releases its leases
        deadline = asyncio.get_running_loop().time() + 10
        while set(b.watchers) != {"orders", "inventory"}:
            assert asyncio.get_running_loop().time() < deadline, "no takeover"
            await asyncio.sleep(0.05)
        await first.aclose()

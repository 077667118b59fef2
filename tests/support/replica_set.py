"""The service's fault scenarios against a three-member mongosim set: the set, the
applications' client to it, the service's settings, and what the scenarios read back.

Every election is triggered (``step_down``, ``elect``) and a member cut off from the
majority stays primary until the network heals (an election timeout no test run
reaches), so nothing depends on the wall clock.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from prometheus_client import CollectorRegistry

from streamer.mongo import Mongo
from streamer.runtime.supervisor import Service
from streamer.settings import Settings

from .faults import Outcome, score
from .members import Start, motor, three_members
from .model import Traffic, drive
from .polling import eventually
from .service import test_settings

# They kill members and cut the network: only a private mongosim's are ours.
private_set_only = pytest.mark.skipif(
    bool(os.environ.get("MONGODB_URI")),
    reason="kills members and cuts the network of a private mongosim; a real set's are not ours",
)

# The drivers' heartbeat (their minimum, 500 ms): they find the new primary quickly.
HEARTBEAT = "&heartbeatFrequencyMS=500"


@dataclass
class Set:
    """A three-member set, the applications' client to it, and the service's settings."""

    sim: ThreadedMongoSim
    client: AsyncIOMotorClient[Any]
    settings: Settings

    @property
    def db(self) -> AsyncIOMotorDatabase[Any]:
        return self.client.shop

    def host(self, index: int) -> tuple[str, int]:
        host, port = self.sim.replset.members[index].host.rsplit(":", 1)
        return host, int(port)

    def direct(self, index: int) -> AbstractAsyncContextManager[AsyncIOMotorClient[Any]]:
        """A direct connection to one member (an application pinned to it), closed when
        the block ends."""
        return motor(self.sim.replset.uri_of(index), serverSelectionTimeoutMS=20_000)

    async def follows(self, index: int) -> None:
        """Until the applications' client sends its writes to member ``index``."""

        async def there() -> bool:
            await self.client.admin.command("ping")
            return self.client.primary == self.host(index)

        await eventually(there, what=f"the applications' client following member {index}")

    async def score(self, name: str, traffic: Traffic, faults: int) -> Outcome:
        async with Mongo(self.settings.mongo_options()) as store:
            return await score(name, self.db, store, traffic, faults)


@asynccontextmanager
async def replica_set(
    private_mongosim: Start,
    *,
    replication_delay_ms: float = 5,
    settings: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Set]:
    """A set of the scenario's own (it kills and deposes members); ``settings`` override
    the service's."""
    # No election but the ones a test triggers: a member cut off from the majority stays
    # primary (taking w:1 writes) until the network heals, however loaded the machine is.
    async with three_members(
        private_mongosim, replication_delay_ms=replication_delay_ms, **options
    ) as sim:
        uri = sim.replset.uri + HEARTBEAT
        # socket_timeout_ms: a bound, never the path a scenario takes: a w:majority
        # write waiting on a member that steps down ends at once (writeConcernError
        # InterruptedDueToReplStateChange, as on mongod).
        values: dict[str, Any] = {
            "retry_max_s": 30,
            "lease_ttl_s": 5,
            "socket_timeout_ms": 5000,
            **(settings or {}),
        }
        async with motor(uri, serverSelectionTimeoutMS=30_000) as client:
            yield Set(sim, client, test_settings(uri, "shop", **values))


async def step_down_mid_traffic(rs: Set, traffic: Traffic, events: int) -> int:
    """Drive ``events`` events of ``traffic`` and step the primary down halfway through
    them (the rest is written to the new primary). The new primary's index."""
    replset = rs.sim.replset
    old = replset.primary
    halfway = asyncio.Event()
    writer = asyncio.create_task(drive(traffic, events, halfway))
    await halfway.wait()
    await rs.sim.acall(replset.step_down())
    new = replset.primary
    assert new is not None and new != old, (old, new)
    await writer
    return new


def samples(service: Service, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric ``name`` the service's registry has now: (labels, value)."""
    registry: CollectorRegistry = service.metrics.registry
    return [
        (dict(sample.labels), sample.value)
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    ]


def retries(service: Service) -> dict[str, float]:
    """streamer_transaction_retries_total by reason, summed over the streams."""
    out: dict[str, float] = {}
    for labels, value in samples(service, "streamer_transaction_retries_total"):
        out[labels["reason"]] = out.get(labels["reason"], 0) + value
    return out

"""failCommand faults on the service's own commands, and a step-down under load.

The fail point is scoped to the service with ``appName: "streamer"``, so the traffic
generator's writes are not affected. Bounded run: every fault and every command at
least once; FAULTS_FULL=1: every pair.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.settings import Settings
from tests.support.faults import FULL, check, score, size
from tests.support.model import Traffic, drive
from tests.support.service import RunService, caught_up

COMMANDS = ["getMore", "aggregate", "update", "insert", "commitTransaction"]
FAULTS: dict[str, dict[str, Any]] = {
    "closeConnection": {"closeConnection": True},
    "NotWritablePrimary": {"errorCode": 10107},
    "PrimarySteppedDown": {"errorCode": 189},
    "ShutdownInProgress": {"errorCode": 91},
    "WriteConflict": {"errorCode": 112, "errorLabels": ["TransientTransactionError"]},
    "UnknownTransactionCommitResult": {
        "errorCode": 50,
        "errorLabels": ["UnknownTransactionCommitResult"],
    },
    # socketTimeoutMS is 1000 in these scenarios: the driver gives up on the reply.
    "blockConnection": {"blockConnection": True, "blockTimeMS": 1500},
}
BOUNDED = [
    ("getMore", "closeConnection"),
    ("aggregate", "NotWritablePrimary"),
    ("update", "PrimarySteppedDown"),
    ("insert", "ShutdownInProgress"),
    ("update", "WriteConflict"),
    ("commitTransaction", "UnknownTransactionCommitResult"),
    ("commitTransaction", "blockConnection"),
]
PAIRS = [(c, f) for c in COMMANDS for f in FAULTS] if FULL else BOUNDED


@pytest.mark.parametrize(("command", "fault"), PAIRS)
async def test_fail_command(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    mongo: Mongo,
    service: RunService,
    fail_point: Any,
    command: str,
    fault: str,
) -> None:
    """The service's command fails repeatedly mid-traffic; it retries or resumes, exactly."""
    traffic = Traffic(db, random.Random(hash((command, fault)) & 0xFFFF))
    events, times = size(300, 1500), size(3, 10)
    async with service(settings):
        for _ in range(events // 3):
            await traffic.step()
        async with fail_point(
            {
                "mode": {"times": times},
                "data": {"failCommands": [command], "appName": "streamer", **FAULTS[fault]},
            }
        ):
            for _ in range(events // 3):
                await traffic.step()
            await caught_up(db, within_s=60)
        for _ in range(events - 2 * (events // 3)):
            await traffic.step()
        await caught_up(db, within_s=60)
    check(await score(f"failCommand {command} {fault}", db, mongo, traffic, times))


async def test_step_down_during_load(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    mongo: Mongo,
    service: RunService,
    client: Any,
) -> None:
    """replSetStepDown while traffic flows: writes pause, the service follows the primary."""
    traffic = Traffic(db, random.Random(11), tolerant=True)
    stepdowns = size(2, 5)
    async with service(settings):
        for _ in range(stepdowns):
            halfway = asyncio.Event()
            writer = asyncio.create_task(drive(traffic, size(200, 1000), halfway))
            await halfway.wait()  # mid-traffic: the step-down lands while the rest is written
            try:
                await client.admin.command({"replSetStepDown": 1, "force": True})
            except Exception as exc:
                assert "not primary" in str(exc).lower() or "connection" in str(exc).lower()
            await writer
        await caught_up(db, within_s=60)
    check(await score("replSetStepDown", db, mongo, traffic, stepdowns))

"""Split streams under faults: three instances share P = 8 partitions of each stream on
mixed traffic with a hot user (a third of the orders, so in every partition).

`make test` runs one bounded scenario that goes through the process faults in turn (an
owner SIGKILLed, a fourth instance joining, one leaving with SIGTERM, one SIGSTOPped past
its lease and woken); `make faults` runs each fault on its own at full size, and adds
lost history on one partition and a repartition from 4 to 8, all under traffic. Each
ends with lost 0 and duplicated 0 against the model, and verify clean.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.commands.repartition import run_repartition
from streamer.core.partitions import partitions_of
from streamer.core.resync_plan import FIRST_START
from streamer.mongo import Mongo
from streamer.settings import Settings
from tests.support.cli import free_port
from tests.support.faults import FULL, check, score, size
from tests.support.model import Traffic, drive
from tests.support.polling import eventually
from tests.support.service import caught_up, partition_keys
from tests.support.service_process import ServiceProcess, live_leases

STREAMS = ("orders", "inventory")
SEEDS = {"kill": 61, "join": 62, "leave": 63, "pause": 64}
P = 8
TTL_S = 2.0


class Fleet:
    """Instances of one split deployment, and the traffic they work through."""

    def __init__(self, db: AsyncIOMotorDatabase[Any], uri: str, driver: str, seed: int) -> None:
        self.db, self.uri, self.driver = db, uri, driver
        self.traffic = Traffic(db, random.Random(seed), hot_share=1 / 3)
        self.running: dict[str, ServiceProcess] = {}
        self.held: dict[str, str] = {}

    async def start(self, name: str, partitions: int = P) -> ServiceProcess:
        process = ServiceProcess(
            self.uri,
            self.db.name,
            instance_id=name,
            partitions=partitions,
            lease_ttl_s=TTL_S,
            driver=self.driver,
            http_port=free_port(),
        )
        await process.start()
        self.running[name] = process
        return process

    async def until_shared_by(self, names: set[str], count: int = P, within_s: float = 90) -> None:
        """Traffic until each stream's partitions are all held, by exactly ``names``,
        each within its fair share."""
        low, high = count // len(names), -(-count // len(names))

        async def shared() -> bool:
            await drive(self.traffic, 20)
            self.held = await live_leases(self.db)
            if set(self.held) != set(partition_keys(count)):
                return False
            for stream in STREAMS:
                mine = [self.held[p.key] for p in partitions_of(stream, count)]
                if set(mine) != names or not all(low <= mine.count(n) <= high for n in names):
                    return False
            return True

        await eventually(
            shared,
            what=f"the partitions shared by {sorted(names)}",
            within_s=within_s,
            detail=lambda: self.held,
        )

    async def stop_all(self) -> None:
        for process in self.running.values():
            if process.proc is not None and process.proc.returncode is None:
                code, err = await process.stop()
                assert code == 0, err[-3000:]


@pytest.fixture
def driver(settings: Settings) -> str:
    return settings.driver


async def finish(fleet: Fleet, name: str, mongo: Mongo, faults: int, count: int = P) -> None:
    await drive(fleet.traffic, 200)
    await caught_up(fleet.db, partition_keys(count), within_s=90)
    await fleet.stop_all()
    check(await score(name, fleet.db, mongo, fleet.traffic, faults))


async def test_split_instances_through_a_kill_a_join_a_leave_and_a_pause(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo, driver: str
) -> None:
    """The bounded run of `make test`: each process fault once, in turn."""
    fleet = Fleet(db, mongo_uri, driver, seed=31)
    await fleet.start("a")
    await caught_up(db, partition_keys(P), within_s=90)  # a's first-start resyncs
    await fleet.start("b")
    await fleet.start("c")
    await fleet.until_shared_by({"a", "b", "c"})
    await drive(fleet.traffic, size(100, 1000))
    await fleet.running.pop("a").kill()  # mid-traffic, mid-batch as it lands
    await fleet.until_shared_by({"b", "c"})
    await fleet.start("d")
    await fleet.until_shared_by({"b", "c", "d"})
    code, err = await fleet.running.pop("b").stop()
    assert code == 0, err[-3000:]
    await fleet.until_shared_by({"c", "d"})
    paused = fleet.running["c"]
    paused.pause()  # past its leases: d takes every partition
    await fleet.until_shared_by({"d"})
    paused.resume()  # its batch in hand, if any, meets a moved checkpoint: fenced
    await fleet.until_shared_by({"c", "d"})
    await finish(fleet, "split: kill, join, leave, pause", mongo, faults=4)


@pytest.mark.skipif(not FULL, reason="make faults: each fault on its own, at full size")
@pytest.mark.parametrize("fault", ["kill", "join", "leave", "pause"])
async def test_split_instances_through_one_fault_at_full_size(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo, driver: str, fault: str
) -> None:
    # A seed per fault, the same in every run (str's hash() is salted per process).
    fleet = Fleet(db, mongo_uri, driver, seed=SEEDS[fault])
    await fleet.start("a")
    await caught_up(db, partition_keys(P), within_s=90)
    await fleet.start("b")
    await fleet.start("c")
    await fleet.until_shared_by({"a", "b", "c"})
    faults = 0
    for _ in range(3):
        await drive(fleet.traffic, 1000)
        if fault == "kill":
            await fleet.running.pop("a").kill()
            await fleet.until_shared_by({"b", "c"})
            await fleet.start("a")
            await fleet.until_shared_by({"a", "b", "c"})
        elif fault == "join":
            await fleet.start("d")
            await fleet.until_shared_by({"a", "b", "c", "d"})
            code, err = await fleet.running.pop("d").stop()
            assert code == 0, err[-3000:]
            await fleet.until_shared_by({"a", "b", "c"})
        elif fault == "leave":
            code, err = await fleet.running.pop("a").stop()
            assert code == 0, err[-3000:]
            await fleet.until_shared_by({"b", "c"})
            await fleet.start("a")
            await fleet.until_shared_by({"a", "b", "c"})
        else:
            fleet.running["a"].pause()
            await fleet.until_shared_by({"b", "c"})
            fleet.running["a"].resume()
            await fleet.until_shared_by({"a", "b", "c"})
        faults += 1
    await finish(fleet, f"split: {fault} x{faults}", mongo, faults)


@pytest.mark.skipif(not FULL, reason="make faults: at full size")
async def test_history_lost_on_one_partition_resyncs_that_partition_alone(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo, driver: str
) -> None:
    """One orders partition's resume token is made unusable (InvalidResumeToken, 260, on
    reopening: its position is lost): that partition resyncs its share while the others
    stream on."""
    fleet = Fleet(db, mongo_uri, driver, seed=41)
    await fleet.start("a")
    await caught_up(db, partition_keys(P), within_s=90)
    await fleet.start("b")
    await fleet.start("c")
    await fleet.until_shared_by({"a", "b", "c"})
    await drive(fleet.traffic, 1000)
    lost = partitions_of("orders", P)[3].key
    # Its owner's next commit fails the compare-and-set; it reloads, and the stream
    # cannot resume from the token.
    await db.streamer_checkpoints.update_one(
        {"_id": lost}, {"$set": {"token": {"_data": "not-a-token"}}, "$inc": {"version": 1}}
    )
    await eventually(
        lambda: db.streamer_checkpoints.find_one(
            {"_id": lost, "phase": "stream", "last_resync.reason": {"$ne": FIRST_START}}
        ),
        what=f"{lost} resynced after its history was lost",
        within_s=90,
    )
    await finish(fleet, "split: history lost on one partition", mongo, faults=1)
    # The others kept streaming: their last resync is still their first start's.
    again = await db.streamer_checkpoints.count_documents(
        {
            "_id": {"$in": [k for k in partition_keys(P) if k != lost]},
            "last_resync.reason": {"$ne": FIRST_START},
        }
    )
    assert again == 0


@pytest.mark.skipif(not FULL, reason="make faults: at full size")
async def test_repartition_from_4_to_8_under_traffic(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, mongo: Mongo, driver: str, settings: Settings
) -> None:
    fleet = Fleet(db, mongo_uri, driver, seed=51)
    await fleet.start("a", partitions=4)
    await caught_up(db, partition_keys(4), within_s=90)  # a's first-start resyncs, before traffic
    for name in ("b", "c"):
        await fleet.start(name, partitions=4)
    await fleet.until_shared_by({"a", "b", "c"}, count=4)
    await drive(fleet.traffic, 1000)
    await run_repartition(mongo, settings, STREAMS, 8)
    for name in ("a", "b", "c"):
        await drive(fleet.traffic, 50)
        code, err = await fleet.running.pop(name).wait(within_s=60)
        assert code == 1 and "repartitioned into 8 partitions" in err, err[-3000:]
        await fleet.start(name, partitions=8)
    await fleet.until_shared_by({"a", "b", "c"})
    await finish(fleet, "split: repartition 4 -> 8", mongo, faults=1)

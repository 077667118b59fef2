"""``streamer verify`` is exact while the service runs: one cluster time for both sides."""

from __future__ import annotations

import json
import random
from typing import Any

import structlog
from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from streamer.commands.verify import Options, comparable_report, verify_and_repair
from streamer.mongo import Mongo
from streamer.settings import Settings
from tests.support.cli import cli_env, streamer
from tests.support.model import Traffic, continuous
from tests.support.polling import eventually
from tests.support.service import RunService, caught_up, test_settings

VERIFY_RUNS = 20


async def test_verify_under_continuous_mixed_traffic_never_reports_false_drift(
    db: AsyncIOMotorDatabase[Any], settings: Settings, mongo: Mongo, service: RunService
) -> None:
    """Inserts, status and amount updates, orders moving between users, replaces, deletes
    and stock changes run throughout: 20 verifications in a row find no drift."""
    traffic = Traffic(db, random.Random(12))
    async with service(settings), continuous(traffic):
        await caught_up(db)  # the traffic is flowing and the service applying it
        for run in range(VERIFY_RUNS):
            report = await comparable_report(mongo, settings, wait_s=10)
            assert not report.drift, (run, report.lines())
            assert report.totals.checked > 0 and report.alerts.checked > 0
    print(f"\n{VERIFY_RUNS} verifications, 0 false drifts, {traffic.events} events of traffic")


async def test_a_hand_edited_total_is_reported_and_repair_fixes_it_while_the_service_runs(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """verify names the edited user (exit 1); --repair rewrites it under the stream's
    compare-and-set while traffic flows, and verify is clean afterwards."""
    settings = test_settings(mongo_uri, db.name)
    env = cli_env(mongo_uri, db.name)
    await db.orders.insert_many(
        [
            {"user_id": "tam", "amount": 5, "status": "completed"},
            {"user_id": "tam", "amount": 2, "status": "completed"},
        ]
    )
    traffic = Traffic(db, random.Random(7))
    async with service(settings):
        await caught_up(db)
        await db.user_totals.update_one(
            {"_id": "tam"}, {"$set": {"total": Decimal128("999"), "count": 3}}
        )
        async with continuous(traffic):
            code, out, err = await streamer(env, "verify", "--json")
            assert code == 1, out + err
            report = json.loads(out)
            totals = report["collections"]["user_totals"]
            assert report["drift"] is True and totals["drifted"] == 1
            assert totals["examples"] == [
                {
                    "key": "'tam'",
                    "problems": ["total Decimal128('999'), expected 7", "count 3, expected 2"],
                }
            ]

            code, out, err = await streamer(env, "verify", "--repair")
            assert code == 0, out + err
            assert "  user_totals 'tam': rewritten (count 2, total 7)" in out.splitlines()
            after = out.split("after repair:\n", 1)[1].splitlines()
            assert [line.split(":")[0] for line in after] == ["user_totals", "stock_alerts"]
            assert all(line.endswith(" 0 drifted") for line in after), out

            code, out, err = await streamer(env, "verify")
            assert code == 0, out + err
        await caught_up(db)
    doc = await db.user_totals.find_one({"_id": "tam"})
    assert doc is not None and doc["total"] == Decimal128("7") and doc["count"] == 2
    print(f"\nrepaired under {traffic.events} events of traffic")


async def test_hand_edited_alerts_are_reported_and_repair_fixes_them_while_the_service_runs(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """A low product's alert deleted by hand and an alert opened by hand for a stocked
    product: verify names both (exit 1); --repair opens the one and resolves the other
    under the inventory stream's compare-and-set while traffic flows; verify is clean,
    and the service carries on from the repaired alerts."""
    settings = test_settings(mongo_uri, db.name)
    env = cli_env(mongo_uri, db.name)
    await db.inventory.insert_many(
        [
            {"_id": "repair-low", "sku": "L", "name": "Low", "stock": 1},
            {"_id": "repair-high", "sku": "H", "name": "High", "stock": 500},
        ]
    )
    traffic = Traffic(db, random.Random(8))
    async with service(settings):
        await caught_up(db)
        deleted = await db.stock_alerts.delete_one({"product_id": "repair-low", "state": "open"})
        assert deleted.deleted_count == 1  # the service had opened it
        await db.stock_alerts.insert_one(
            {"product_id": "repair-high", "sku": "H", "name": "High", "state": "open"}
        )
        async with continuous(traffic):
            code, out, err = await streamer(env, "verify", "--json")
            assert code == 1, out + err
            alerts = json.loads(out)["collections"]["stock_alerts"]
            assert sorted(e["key"] for e in alerts["examples"]) == ["'repair-high'", "'repair-low'"]

            code, out, err = await streamer(env, "verify", "--repair")
            assert code == 0, out + err
            lines = out.splitlines()
            threshold = settings.low_stock_threshold
            opened_line = f"  stock_alerts 'repair-low': opened (stock 1, threshold {threshold})"
            assert opened_line in lines, out
            assert any(
                line.startswith("  stock_alerts 'repair-high': alert ")
                and line.endswith(" resolved (not low)")
                for line in lines
            ), out
            after = out.split("after repair:\n", 1)[1].splitlines()
            assert all(line.endswith(" 0 drifted") for line in after), out
        await caught_up(db)
        code, out, err = await streamer(env, "verify")
        assert code == 0, out + err
        opened = await db.stock_alerts.find_one({"product_id": "repair-low", "state": "open"})
        assert opened is not None and opened["opened_by"] == "streamer verify --repair"
        resolved = await db.stock_alerts.find_one({"product_id": "repair-high"})
        assert resolved is not None and resolved["resolution"] == "repaired"
        # The service resolves the repaired alert as its own when the product restocks.
        await db.inventory.update_one({"_id": "repair-low"}, {"$set": {"stock": 400}})
        await caught_up(db)
    restocked = await db.stock_alerts.find_one({"_id": opened["_id"]})
    assert restocked is not None and restocked["state"] == "resolved"
    assert restocked["resolution"] == "restocked"


async def test_a_checkpoint_older_than_the_history_window_gets_a_clear_message(
    private_mongosim: Any,
) -> None:
    """A stopped service whose source changed since: verify says the position is older
    than the server's snapshot history (exit 1), never a wrong answer."""
    async with private_mongosim() as sim:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        try:
            db = client.verify_window
            env = cli_env(sim.uri, db.name)
            await db.orders.insert_one({"user_id": "u", "amount": 1, "status": "completed"})
            code, out, err = await streamer(env, "resync")
            assert code == 0, out + err
            code, out, err = await streamer(env, "verify")
            assert code == 0, out + err

            await db.orders.insert_one({"user_id": "u", "amount": 2, "status": "completed"})
            await client.admin.command({"setParameter": 1, "minSnapshotHistoryWindowInSeconds": 0})
            checkpoint = await db.streamer_checkpoints.find_one({"_id": "orders"})
            assert checkpoint is not None

            async def moved_past() -> bool:
                reply = await db.command("ping")
                if reply["operationTime"].time > checkpoint["position"].time:
                    return True
                await db.other.insert_one({})  # the clock moves on within a second
                return False

            await eventually(
                moved_past, what="the cluster time past the checkpoint", within_s=5, interval_s=0
            )

            code, out, err = await streamer(env, "verify", "--wait", "0.5")
            assert code == 1, out + err
            assert out == ""
            assert "older than the server's snapshot history" in err
            assert "minSnapshotHistoryWindowInSeconds" in err

            code, out, err = await streamer(env, "verify", "--json", "--wait", "0")
            assert code == 1
            assert json.loads(out)["drift"] is None
        finally:
            client.close()


async def test_a_repair_under_steady_traffic_holds_the_owner_still_and_then_lets_it_go_on(
    db: AsyncIOMotorDatabase[Any], mongo: Mongo, service: RunService
) -> None:
    """Under steady traffic the owner commits a batch within any few round trips, so a
    repair that only raced it could lose every attempt. Asked to hold still, the owner
    grants the hold between batches, commits nothing until the repair withdraws it, and
    then goes on: the totals are exact, the hold is gone from the checkpoint, and the
    service keeps up with the traffic."""
    settings = test_settings(mongo.options.uri, db.name)
    await db.orders.insert_one({"user_id": "hal", "amount": 4, "status": "completed"})
    traffic = Traffic(db, random.Random(9))
    with structlog.testing.capture_logs() as logs:
        async with service(settings):
            await caught_up(db)
            await db.user_totals.update_one({"_id": "hal"}, {"$set": {"count": 9}})
            async with continuous(traffic):
                first, changed, after = await verify_and_repair(
                    mongo, settings, Options(repair=True, wait_s=10)
                )
                assert first.drift
                assert changed == ["user_totals 'hal': rewritten (count 1, total 4)"]
                assert after is not None and not after.drift, after.lines()
            await caught_up(db)
    held = [e for e in logs if e["event"] == "stream.held" and e.get("stream") == "orders"]
    ended = [e for e in logs if e["event"] == "stream.hold_ended" and e.get("stream") == "orders"]
    assert len(held) == 1 and [e["how"] for e in ended] == ["withdrawn"], (held, ended)
    checkpoint = await db.streamer_checkpoints.find_one({"_id": "orders"})
    assert checkpoint is not None
    assert "hold_requested" not in checkpoint and "hold_granted" not in checkpoint
    doc = await db.user_totals.find_one({"_id": "hal"})
    assert doc is not None and doc["count"] == 1

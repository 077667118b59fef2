"""The service under its documented role (``streamer.commands.role``), against mongosim with
``--auth`` and TLS (client certificates required): the README's "The MongoDB role" and
"TLS" sections are these tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from bson import Timestamp
from motor.motor_asyncio import AsyncIOMotorDatabase
from structlog.testing import capture_logs

from streamer.commands import role
from streamer.mongo import Mongo
from streamer.runtime import membership
from streamer.runtime.supervisor import Service
from streamer.runtime.verify import verify
from streamer.settings import Settings
from streamer.streams import orders
from tests.support.polling import eventually
from tests.support.secured import (  # noqa: F401 - fixtures
    DATABASE,
    PASSWORD,
    Secured,
    driver_fixture,
    secured_fixture,
)
from tests.support.service import caught_up, run_service

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_shows_the_role_the_service_is_proven_under() -> None:
    """The README's createRole snippet is ``streamer.commands.role.create_role_js()``, verbatim."""
    assert role.create_role_js() in README.read_text()


async def test_the_service_keeps_totals_and_alerts_under_its_role_over_tls(
    secured: Secured, driver: str
) -> None:
    """Bootstrap, totals, an alert and verify, all as the least-privilege user over TLS."""
    await secured.add_service_user(role.privileges(DATABASE))
    db: AsyncIOMotorDatabase[Any] = secured.root[DATABASE]
    settings = secured.settings(driver)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await db.inventory.insert_one({"_id": "p1", "sku": "S", "name": "W", "stock": 50})
    with capture_logs() as logs:
        async with run_service(settings) as service:
            await db.orders.insert_many(
                [
                    {"user_id": "u", "amount": 2, "status": "completed", "created_at": t0}
                    for _ in range(3)
                ]
            )
            await db.inventory.update_one({"_id": "p1"}, {"$set": {"stock": 5}})
            await caught_up(db)
            assert service.health.oldest_oplog_s is not None  # find on local.oplog.rs
    assert (await db.user_totals.find_one({"_id": "u"}) or {})["count"] == 3
    assert (await db.stock_alerts.find_one({"product_id": "p1"}) or {}).get("state") == "open"
    async with Mongo(settings.mongo_options()) as mongo:
        assert not (await verify(mongo, default_threshold=10)).drift
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert PASSWORD not in repr(logs)


def _without(
    privileges: list[dict[str, Any]], collection: str, action: str
) -> list[dict[str, Any]]:
    out = []
    for p in privileges:
        actions = list(p["actions"])
        if p["resource"].get("collection") == collection and action in actions:
            actions.remove(action)
        if actions:
            out.append({"resource": p["resource"], "actions": actions})
    return out


NEEDED = [
    *[(c, a) for c in role.SOURCES for a in role.SOURCE_ACTIONS],
    *[(c, a) for c, actions in role.STATE.items() for a in actions],
    *[("", a) for a in role.BOOTSTRAP_ACTIONS],
]


async def _caught_up_or_exited(
    db: AsyncIOMotorDatabase[Any], service: asyncio.Task[int], deadline: float
) -> bool:
    """Wait until both streams' checkpoints cover every write so far (True), or the
    service has exited (False); the deadline is a test failure."""
    target = (await db.command("ping"))["operationTime"]
    docs: dict[Any, Any] = {}

    async def settled() -> str:
        nonlocal docs
        if service.done():
            return "exited"
        docs = {d["_id"]: d async for d in db.streamer_checkpoints.find({})}
        # Both streams' checkpoints, or their partitions' when split.
        covered = {k.partition("#")[0] for k in docs} == {"orders", "inventory"} and all(
            d.get("phase") == "stream" and (d.get("position") or Timestamp(0, 0)) >= target
            for d in docs.values()
        )
        # A split stream's shares of totals folded too (none waits for a refused fold).
        folded = covered and not await db[orders.DELTAS].find_one({})
        return "caught up" if folded else ""

    outcome = await eventually(
        settled,
        what=f"caught up to {target} or exited",
        within_s=max(deadline - asyncio.get_running_loop().time(), 0),
        interval_s=0.02,
        detail=lambda: docs,
    )
    return outcome == "caught up"


Step = Callable[[AsyncIOMotorDatabase[Any]], Awaitable[Any]]


async def _run_workload(
    settings: Settings, db: AsyncIOMotorDatabase[Any], steps: list[Step], within_s: float
) -> tuple[int | None, list[Any]]:
    """Run the service and, once it is streaming, each step in turn, the next one only
    after the service has applied the last (so a document's insert, update and delete
    come in different batches). Its exit code if it fails on the way, None if it ran
    until stopped after the last step, and its logs."""
    service = Service(settings, http_port=0)
    deadline = asyncio.get_running_loop().time() + within_s
    with capture_logs() as logs:
        task = asyncio.create_task(service.run())
        try:
            for step in [None, *steps]:
                if step is not None:
                    await step(db)
                if not await _caught_up_or_exited(db, task, deadline):
                    break
        finally:
            service.stop()
            code = await asyncio.wait_for(task, 30)
    return None if code == 0 else code, logs


T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BEFORE = {  # written before the service starts: the first resync inserts their state
    "orders": {"_id": "o0", "user_id": "u0", "amount": 1, "status": "completed", "created_at": T0},
    "inventory": {"_id": "p0", "sku": "S", "name": "W", "stock": 1},  # an alert opens
}


async def _change(db: AsyncIOMotorDatabase[Any]) -> None:
    """Replaces: the order's amount (its mirror document and its user's total) and the
    product's stock (its mirror document, and its alert resolves); an order the
    validator is bypassed for and the service cannot count (a quarantine record)."""
    await db.orders.update_one({"_id": "o0"}, {"$set": {"amount": 2}})
    await db.inventory.update_one({"_id": "p0"}, {"$set": {"stock": 50}})
    await db.orders.insert_one(
        {"_id": "bad", "user_id": "u1", "amount": -1, "status": "completed", "created_at": T0},
        bypass_document_validation=True,
    )


async def _delete(db: AsyncIOMotorDatabase[Any]) -> None:
    """Deletes: the user's last order (its total and mirror document go) and the
    product (its mirror document goes)."""
    await db.orders.delete_one({"_id": "o0"})
    await db.inventory.delete_one({"_id": "p0"})


async def test_the_workload_uses_every_action_the_role_grants(secured: Secured) -> None:
    """What the cases below rely on: under the full role the workload runs through and
    leaves the traces of each kind of write (so a case that passes was refused, not idle)."""
    await secured.add_service_user(role.privileges(DATABASE))
    db = secured.root[DATABASE]
    for coll, doc in BEFORE.items():
        await db[coll].insert_one(doc)
    seen: dict[str, Any] = {}

    async def after_change(db: AsyncIOMotorDatabase[Any]) -> None:
        seen["total"] = await db.user_totals.find_one({"_id": "u0"})
        seen["alert"] = await db.stock_alerts.find_one({"product_id": "p0"})

    code, logs = await _run_workload(
        secured.settings("pymongo", retry_max_s=1), db, [_change, after_change, _delete], 30
    )
    assert code is None, logs
    assert not [e for e in logs if e["log_level"] in ("error", "critical")]
    assert (seen["total"] or {}).get("count") == 1  # replaced, not inserted again
    assert (seen["alert"] or {}).get("state") == "resolved"
    assert [r["key"] async for r in db.streamer_quarantine.find()] == ["bad"]
    assert await db.user_totals.find_one({"_id": "u0"}) is None
    assert await db.streamer_mirror_orders.count_documents({"_id": "o0"}) == 0
    assert await db.streamer_mirror_inventory.count_documents({}) == 0


def _name(collection: str, action: str) -> str:
    return f"{collection or DATABASE}-{action}"


@pytest.mark.parametrize(
    ("collection", "action"), [pytest.param(c, a, id=_name(c, a)) for c, a in NEEDED]
)
async def test_each_granted_action_is_needed(
    secured: Secured, driver: str, collection: str, action: str
) -> None:
    """Without any one action the service stops with one clear error line (Unauthorized),
    never a crash loop or a traceback, and promptly: Unauthorized is never retried."""
    await secured.add_service_user(_without(role.privileges(DATABASE), collection, action))
    db = secured.root[DATABASE]
    for coll, doc in BEFORE.items():
        await db[coll].insert_one(doc)
    # retry_max_s=1: an Unauthorized wrongly retried would end as DatabaseUnavailable,
    # which the service rides out, and the case fails instead of passing slowly. The
    # deadline is for a loaded CI machine; an unloaded one takes a few seconds.
    # Heartbeats and shares of totals are written and read for split streams only. In 2
    # partitions, order o0 (server hash) is in partition 0 and its user u0's totals are
    # written by partition 1 (streamer.core.partitions.owner_of): o0's moves are shares.
    split = {"partitions": 2} if collection in (membership.COLLECTION, orders.DELTAS) else {}
    settings = secured.settings(driver, retry_max_s=1, **split)
    code, logs = await _run_workload(settings, db, [_change, _delete], within_s=45)
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert code == 1, logs
    assert len(errors) == 1 and "not authorized" in str(errors[0]), errors
    # Refused on that collection (the database's bootstrap commands, for the last row).
    if collection:
        refused = re.compile(r'execute command \{ \w+: "' + re.escape(collection) + '"')
        assert refused.search(errors[0]["error"]), errors
    else:
        assert errors[0]["event"] == "service.bootstrap_failed", errors
    assert not [e for e in logs if e.get("exc_info")]
    assert PASSWORD not in repr(logs)


async def test_a_privilege_revoked_while_running_stops_the_service_at_its_next_use(
    secured: Secured,
) -> None:
    """The lease renewal refused (update on streamer_leases taken away): exit 1 with one
    line at the next renewal, not a lease left to expire after warnings."""
    await secured.add_service_user(role.privileges(DATABASE))
    db = secured.root[DATABASE]
    settings = secured.settings("pymongo", retry_max_s=1, lease_ttl_s=1.5)
    without_update = _without(role.privileges(DATABASE), "streamer_leases", "update")

    async def revoke_once_both_streams_are_leased() -> None:
        async def both_leased() -> bool:
            return await db.streamer_leases.count_documents({"owner": {"$exists": True}}) >= 2

        await eventually(both_leased, what="both leases taken", within_s=20, interval_s=0.02)
        await secured.root.admin.command({"updateRole": "streamer", "privileges": without_update})

    revoking = asyncio.create_task(revoke_once_both_streams_are_leased())
    code, logs = await _run_until_logged(settings, "service.stopped", 1, within_s=30)
    assert revoking.done()
    errors = [e for e in logs if e["log_level"] in ("error", "critical")]
    assert code == 1, logs
    assert len(errors) == 1 and 'findAndModify: "streamer_leases"' in errors[0]["error"], errors
    assert not [e for e in logs if e["event"] == "lease.renew_failed"]


async def test_without_the_oplog_the_headroom_gauge_is_absent_with_one_warning(
    secured: Secured,
) -> None:
    """find on local.oplog.rs is optional: the service runs, warns once, has no headroom."""
    await secured.add_service_user(role.privileges(DATABASE, oplog=False))
    db = secured.root[DATABASE]
    with capture_logs() as logs:
        async with run_service(secured.settings("pymongo")) as service:
            await db.orders.insert_one({"user_id": "u", "amount": 1, "status": "completed"})
            await caught_up(db)
            assert service.health.oldest_oplog_s is None
    warnings = [e for e in logs if e["event"] == "health.oplog_unreadable"]
    assert len(warnings) == 1


async def _run_until_logged(
    settings: Settings,
    event: str,
    times: int,
    within_s: float,
    probe: list[dict[str, str]] | None = None,
) -> tuple[int | None, list[Any]]:
    """Run the service until it exits (its code) or has logged ``event`` ``times`` times
    (None, after a graceful stop); its logs. The deadline is a test failure. ``probe``
    gets the readiness checks as they were then, before the stop."""
    service = Service(settings, http_port=0)
    with capture_logs() as logs:
        task = asyncio.create_task(service.run())
        try:
            await eventually(
                lambda: task.done() or sum(e["event"] == event for e in logs) >= times,
                what=f"the service exited or logged {event} {times} times",
                within_s=within_s,
                interval_s=0.02,
                detail=lambda: logs,
            )
            if probe is not None:
                probe.append(service.health.readiness().checks)
        finally:
            service.stop()
            code = await asyncio.wait_for(task, 30)
    return None if code == 0 else code, logs


async def test_a_wrong_password_is_one_error_naming_the_user_not_the_password(
    secured: Secured,
) -> None:
    """AuthenticationFailed (18) is fatal: exit 1, the user and auth database named."""
    await secured.add_service_user(role.privileges(DATABASE))
    settings = secured.settings("pymongo", password="wrong-pw", retry_max_s=1)
    code, logs = await _run_until_logged(settings, "service.stopped", 1, within_s=20)
    errors = [e for e in logs if e["log_level"] == "error"]
    assert code == 1 and len(errors) == 1, logs
    assert "streamer" in errors[0]["error"] and "admin" in errors[0]["error"]
    assert "wrong-pw" not in repr(logs)


async def test_a_server_certificate_from_an_unknown_ca_is_one_error(secured: Secured) -> None:
    """A CA that did not sign the server's certificate: the connection is refused."""
    await secured.add_service_user(role.privileges(DATABASE))
    settings = secured.settings(
        "pymongo",
        tls_ca_file=secured.certs.other_ca,
        retry_max_s=1,
        server_selection_timeout_ms=1000,
    )
    readiness: list[dict[str, str]] = []
    code, logs = await _run_until_logged(
        settings, "service.database_unreachable", 1, within_s=30, probe=readiness
    )
    text = repr(logs)
    assert PASSWORD not in text
    # `run` keeps retrying with readiness false; the first failed attempt says why at
    # once (later ones once a minute), and /readyz says the same.
    assert code is None
    unreachable = [e for e in logs if e["event"] == "service.database_unreachable"]
    assert [e for e in logs if e["log_level"] == "error"] == unreachable
    [event] = unreachable
    line = event["error"]
    assert event["attempt"] == 1
    assert line.startswith("TLS certificate check failed for mongodb://"), line
    assert "certificate verify failed" in line and "STREAMER_TLS_CA_FILE" in line
    [checks] = readiness
    assert checks["database"].startswith("unreachable for ") and checks["database"].endswith(
        f"s: {line}"
    ), checks

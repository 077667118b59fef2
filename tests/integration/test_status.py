"""``streamer status`` against a running and a stopped service: the lag /metrics shows,
the lease's live owner, and the JSON document."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from prometheus_client.parser import text_string_to_metric_families

from streamer.commands.status import StatusReport, read_status
from streamer.mongo import Mongo
from streamer.runtime.processes import ProcessId
from streamer.runtime.supervisor import Service
from streamer.runtime.verify import SOURCE_OF
from streamer.settings import Settings
from tests.support.cli import cli_env, streamer
from tests.support.polling import eventually
from tests.support.service import RunService, caught_up, get, test_settings

IDLE_S = 5  # how far the database moves on past the idle orders stream's checkpoint
WINDOW_S = 0.5  # the longest read of metric, status, metric that counts as one window
# Cluster times count whole seconds, so two readings of one lag may differ by up to
# 1 s, plus the time between them (the window) and the owner's getMore wait (50 ms
# here). Measured on the project machine: 0.01-0.02 s apart in 6 runs, every window
# the first one tried (0.02-0.03 s long); the old status, which read the stale
# checkpoint, 4.4 s apart.
TOLERANCE_S = 1.0 + WINDOW_S + 0.05


async def metric_lag(service: Service, stream: str) -> float | None:
    """``streamer_lag_seconds{stream=…}`` as /metrics serves it."""
    code, _, body = await get(service, "/metrics")
    assert code == 200
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == "streamer_lag_seconds" and sample.labels == {
                "stream": stream,
                "partition": "0",
            }:
                return float(sample.value)
    return None


async def status_lag(mongo: Mongo, stream: str) -> float | None:
    report = await read_status(mongo, SOURCE_OF)
    [s] = [s for s in report.streams if s.stream == stream]
    return s.partitions[0].lag_s


async def one_order_applied(db: AsyncIOMotorDatabase[Any]) -> None:
    """Insert an order and wait until the service has applied it."""
    async with await db.client.start_session() as session:
        await db.orders.insert_one(
            {"user_id": "u", "amount": 1, "status": "completed"}, session=session
        )
        inserted_at = session.operation_time
    # Up to the insert, not to a later ping: the service's own checkpoint writes move the
    # cluster time on, and with idle saves 60 s apart the stored orders checkpoint would
    # not cover them for a minute.
    await caught_up(db, ("orders",), at=inserted_at)


@asynccontextmanager
async def moving(db: AsyncIOMotorDatabase[Any]) -> AsyncIterator[None]:
    """Writes to a collection no stream reads, about every 20 ms: the cluster time
    keeps up with the clock while the streams stay idle."""
    stop = asyncio.Event()

    async def write() -> None:
        while not stop.is_set():
            await db.elsewhere.insert_one({})
            # Pacing, not a wait on state: the point is a cluster time that moves with
            # the clock, so the writes are spread over it.
            await asyncio.sleep(0.02)

    task = asyncio.create_task(write())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_status_shows_the_lag_metrics_shows_on_an_idle_stream_while_the_database_moves(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """The orders checkpoint stays as stored (idle saves every 60 s) while the cluster
    time moves IDLE_S past it: status must not show that as lag. Read in one window
    (metric, status, metric), the two agree within TOLERANCE_S."""
    quiet = settings.model_copy(update={"idle_checkpoint_interval_s": 60.0})
    async with service(quiet) as svc, Mongo(quiet.mongo_options()) as mongo:
        await one_order_applied(db)
        stored = await db.streamer_checkpoints.find_one({"_id": "orders"})
        assert stored is not None
        async with moving(db):

            async def moved_on() -> bool:
                reply = await db.command("ping")
                return bool(reply["operationTime"].time >= stored["position"].time + IDLE_S)

            await eventually(
                moved_on, what=f"the cluster time {IDLE_S} s past the checkpoint", within_s=60
            )
            still = await db.streamer_checkpoints.find_one({"_id": "orders"})
            assert still is not None and still["version"] == stored["version"]  # as stored

            readings = []
            for _ in range(50):
                started = asyncio.get_running_loop().time()
                before = await metric_lag(svc, "orders")
                status = await status_lag(mongo, "orders")
                after = await metric_lag(svc, "orders")
                took = asyncio.get_running_loop().time() - started
                readings.append((before, status, after, round(took, 3)))
                if took <= WINDOW_S:
                    break
            else:
                raise AssertionError(f"never read in one {WINDOW_S}s window: {readings}")
    assert before is not None and status is not None and after is not None, readings
    assert abs(status - before) <= TOLERANCE_S, readings
    assert abs(status - after) <= TOLERANCE_S, readings


QUIET_S = 3  # how long the whole database has had no write when the lags are read


async def test_an_idle_stream_on_an_idle_database_shows_no_lag_however_old_its_last_write(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """Cluster time moves only with writes (the primary's no-op every 10 s on an idle
    set), so "caught up to the reply's operationTime" read an idle stream as QUIET_S and
    more behind. A reply whose $clusterTime is no newer than its operationTime says
    nothing waited when it was asked: caught up as of then (streamer.core.lag). Both
    /metrics and status must show under a second plus the owner's getMore wait (50 ms)
    and the 1 s cluster-time rounding, where the old rule gave at least QUIET_S.
    Measured on the project machine, 6 runs: /metrics 0.06-0.09 s, status 0.004-0.007 s
    (the old rule: 3.64 s); the bound, QUIET_S - 1 = 2 s, leaves 20 times headroom."""
    quiet = settings.model_copy(update={"idle_checkpoint_interval_s": 60.0, "lease_ttl_s": 90.0})
    async with service(quiet) as svc, Mongo(quiet.mongo_options()) as mongo:
        await one_order_applied(db)

        async def database_quiet() -> bool:
            reply = await db.command("ping")
            idle_s = dt.datetime.now(dt.UTC).timestamp() - reply["operationTime"].time
            return bool(idle_s >= QUIET_S + 1)  # + 1: cluster times count whole seconds

        await eventually(database_quiet, what=f"no write for {QUIET_S} s", within_s=60)
        metric = await metric_lag(svc, "orders")
        status = await status_lag(mongo, "orders")
    assert metric is not None and status is not None
    assert metric < QUIET_S - 1, metric
    assert status < QUIET_S - 1, status


def parse(report_json: str) -> StatusReport:
    """The document, checked key by key and type by type, as a script would read it."""
    doc = json.loads(report_json)
    assert list(doc) == ["streams"]
    assert [s["stream"] for s in doc["streams"]] == ["orders", "inventory"]
    for s in doc["streams"]:
        assert set(s) == {"stream", "partitions"}
        [p] = s["partitions"]
        assert p["partition"] == 0
        assert {"owner", "lease_expires_at", "position", "lag_s", "phase"} <= set(p)
        assert p["owner"] is None or isinstance(p["owner"], str)
        assert isinstance(p["lag_s"], float)
        assert p["phase"] == "stream"
        for key in ("lease_expires_at", "position"):
            assert dt.datetime.fromisoformat(p[key]).tzinfo is not None, p[key]
    return StatusReport.model_validate(doc)


async def test_status_names_the_live_owner_and_after_a_graceful_stop_says_no_live_owner(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """While running: the owner with its lease's expiry, in lines and in --json. After
    the service stopped (and released its leases): "no live owner", never the owner."""
    env = cli_env(mongo_uri, db.name)
    async with service(test_settings(mongo_uri, db.name), instance_id="status-a"):
        await db.orders.insert_one({"user_id": "u", "amount": 1, "status": "completed"})
        await caught_up(db)
        code, out, err = await streamer(env, "status", "--json")
        assert code == 0, err
        running = parse(out)
        code, text, err = await streamer(env, "status")
        assert code == 0, err
    for s in running.streams:
        p = s.partitions[0]
        assert p.owner == "status-a", p
        assert p.lease_expires_at is not None
        assert p.lag_s is not None and p.lag_s >= 0
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["orders", "inventory"]
    for line in lines:
        assert " owner=status-a lease_expires_at=" in line, line

    code, out, err = await streamer(env, "status", "--json")
    assert code == 0, err
    stopped = parse(out)
    code, text, err = await streamer(env, "status")
    assert code == 0, err
    for s in stopped.streams:
        p = s.partitions[0]
        assert p.owner is None and p.last_owner == "status-a", p
    for line in text.splitlines():
        assert "no live owner (status-a's lease ended " in line, line
        assert "owner=status-a" not in line, line


async def test_status_of_a_split_service_shows_every_partition_with_its_owner(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """partitions=4: orders and inventory each get four lines and four JSON entries
    (partitions 0-3), each owned by the running instance and streaming."""
    env = cli_env(mongo_uri, db.name)
    settings = test_settings(mongo_uri, db.name, partitions=4)
    async with service(settings, instance_id="split-a"):
        await db.orders.insert_many(
            [{"user_id": f"u{i}", "amount": i, "status": "completed"} for i in range(20)]
        )
        await caught_up(db)
        code, out, err = await streamer(env, "status", "--json")
        assert code == 0, err
        code, text, err = await streamer(env, "status")
        assert code == 0, err
    doc = json.loads(out)
    assert [s["stream"] for s in doc["streams"]] == ["orders", "inventory"]
    for s in doc["streams"]:
        assert [p["partition"] for p in s["partitions"]] == [0, 1, 2, 3]
        for p in s["partitions"]:
            assert p["owner"] == "split-a" and p["phase"] == "stream", p
            assert isinstance(p["lag_s"], float) and p["lag_s"] >= 0, p
            for key in ("lease_expires_at", "position"):
                assert dt.datetime.fromisoformat(p[key]).tzinfo is not None, p
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        f"{stream}#{i}/4" for stream in ("orders", "inventory") for i in range(4)
    ]
    for line in lines:
        assert " phase=stream " in line and " owner=split-a lease_expires_at=" in line, line


async def test_status_of_two_instances_sharing_four_partitions_names_one_owner_each(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, service: RunService
) -> None:
    """Two instances, partitions=4: once they have shared the partitions, every
    partition of both streams names exactly one live owner, and each instance owns
    some of each stream's partitions."""
    env = cli_env(mongo_uri, db.name)
    settings = test_settings(mongo_uri, db.name, partitions=4, lease_ttl_s=3)
    report = StatusReport(streams=[])

    async def shared() -> bool:
        nonlocal report
        code, out, err = await streamer(env, "status", "--json")
        assert code == 0, err
        report = StatusReport.model_validate_json(out)
        return all(
            {p.owner for p in s.partitions} == {"share-a", "share-b"} for s in report.streams
        )

    async with (
        # Two processes to the membership: in one Python process they need their own ids.
        service(settings, instance_id="share-a", process=ProcessId("share-a")),
        service(settings, instance_id="share-b", process=ProcessId("share-b")),
    ):
        await eventually(
            shared, what="both instances owning partitions", within_s=60, detail=lambda: report
        )
    for s in report.streams:
        assert [p.partition for p in s.partitions] == [0, 1, 2, 3]
        assert all(p.phase == "stream" and p.lease_expires_at is not None for p in s.partitions)

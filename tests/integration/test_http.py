"""/metrics, /healthz and /readyz of the running service."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pydantic import SecretStr

from streamer.settings import Settings
from tests.support.service import RunService, caught_up, get, until_status
from tests.support.tools import require


async def test_metrics_describe_the_work_in_base_units_and_pass_promtool(
    db: AsyncIOMotorDatabase[Any], settings: Settings, service: RunService
) -> None:
    """After some traffic the exposition has every family and `promtool check metrics` agrees."""
    async with service(settings, probe_interval_s=0.1) as svc:
        await db.orders.insert_one({"user_id": "m", "amount": 1, "status": "completed"})
        await db.inventory.insert_one({"_id": "low", "sku": "L-1", "name": "L", "stock": 1})
        await db.orders.insert_one({"amount": "bad"}, bypass_document_validation=True)
        await caught_up(db)
        body = await until_status(
            svc,
            "/metrics",
            200,
            saying='streamer_low_stock_alert_info{product_id="low",sku="L-1"} 1.0',
        )
    for family in [
        'streamer_events_applied_total{op="insert",stream="orders"}',
        "streamer_batches_total",
        "streamer_batch_apply_duration_seconds_bucket",
        "streamer_transaction_commits_total",
        'streamer_lag_seconds{partition="0",stream="orders"}',
        'streamer_checkpoint_age_seconds{partition="0",stream="inventory"}',
        "streamer_oplog_headroom_seconds",
        # The setting StreamerOplogHeadroomLow compares the headroom with (3600 s default).
        "streamer_oplog_headroom_threshold_seconds 3600.0",
        'streamer_quarantined_events_total{reason="user_id is missing",stream="orders"} 1.0',
        "streamer_resyncs_total",
        "streamer_open_alerts 1.0",
        "streamer_alerts_opened_total 1.0",
        'streamer_low_stock_alert_info{product_id="low",sku="L-1"} 1.0',
        'streamer_mongodb_command_duration_seconds_bucket{command="find"',
        "streamer_mongodb_pool_connections",
        "streamer_mongodb_pool_checked_out",
        'streamer_stream_owned{owner="',
        "streamer_build_info{",
    ]:
        assert family in body, family
    assert '"m"' not in body  # no per-user labels
    proc = await asyncio.create_subprocess_exec(
        require("promtool"),
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(body.encode())
    assert proc.returncode == 0, out.decode()


async def test_openmetrics_is_served_when_the_scraper_asks_for_it(
    settings: Settings, service: RunService
) -> None:
    """Accept: application/openmetrics-text gets OpenMetrics, ending in # EOF."""
    async with service(settings) as svc:
        code, content_type, body = await get(
            svc, "/metrics", Accept="application/openmetrics-text; version=1.0.0"
        )
    assert code == 200
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")


async def test_health_is_live_and_ready_while_streaming(
    settings: Settings, service: RunService
) -> None:
    """/healthz 200; /readyz 200 with every check ok once both streams run."""
    async with service(settings, probe_interval_s=0.1) as svc:
        code, _, _ = await get(svc, "/healthz")
        assert code == 200
        body = await until_status(svc, "/readyz", 200)
    assert '"orders": "ok"' in body and '"database": "ok"' in body


async def test_a_stalled_stream_makes_the_instance_unready_until_it_recovers(
    settings: Settings, service: RunService, fail_point: Any
) -> None:
    """Every change-stream read failing: lag passes the bound, /readyz 503; fixed: ready
    again. Both commands fail: a stream whose getMores fail but whose reopening
    aggregate answers is not stalled, it catches up at each reopening (streamer.core.lag)."""
    strict = settings.model_copy(update={"ready_max_lag_s": 1.0})
    async with service(strict, probe_interval_s=0.1) as svc:
        await until_status(svc, "/readyz", 200)
        reads = ["aggregate", "getMore"]
        async with fail_point(
            {"mode": "alwaysOn", "data": {"failCommands": reads, "errorCode": 10107}}
        ):
            # Lagging is the reason awaited: with probes every 0.1 s a loaded machine
            # may also answer 503 for a moment because a ping is still out (the
            # database check allows 0.3 s), which is not what this test is about.
            await until_status(svc, "/readyz", 503, saying="lagging")
        await until_status(svc, "/readyz", 200)


async def test_an_unreachable_database_makes_the_instance_unready_but_alive(
    private_mongosim: Any, service: RunService
) -> None:
    """mongosim stopped: /readyz 503 saying why the database is unready, /healthz 200."""
    async with private_mongosim() as sim:
        settings = Settings(
            mongodb_uri=SecretStr(sim.uri),
            database="shop",
            max_batch_wait_ms=50,
            server_selection_timeout_ms=300,
            retry_max_s=1,
        )
        async with service(settings, probe_interval_s=0.1) as svc:
            await until_status(svc, "/readyz", 200)
            await asyncio.to_thread(sim.stop)
            # For how long and why (once a ping has failed): the logs' one-line message.
            body = await until_status(svc, "/readyz", 503, saying="cannot reach MongoDB")
            assert re.search(
                r'"database": "unreachable for \d+s: cannot reach MongoDB at mongodb://127', body
            ), body
            code, _, _ = await get(svc, "/healthz")
            assert code == 200

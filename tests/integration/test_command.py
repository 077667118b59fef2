"""The ``streamer`` command run as a subprocess: exit codes, output, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import aiohttp
import pytest
from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorDatabase

from .conftest import caught_up
from .service_process import ROOT


def env_for(uri: str, database: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "STREAMER_MONGODB_URI": uri,
        "STREAMER_DATABASE": database,
        "STREAMER_LOG_FORMAT": "json",
        "STREAMER_MAX_BATCH_WAIT_MS": "50",
        "STREAMER_IDLE_CHECKPOINT_INTERVAL_S": "0.2",
        "STREAMER_HTTP_PORT": "0",
        **extra,
    }


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamer",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def streamer(env: dict[str, str], *args: str, within_s: float = 60) -> tuple[int, str, str]:
    proc = await spawn(env, *args)
    out, err = await asyncio.wait_for(proc.communicate(), within_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_events(stderr: str) -> list[dict[str, Any]]:
    events = []
    for line in stderr.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


@pytest.mark.parametrize("command", ["run", "bootstrap", "status", "resync", "verify"])
async def test_every_command_explains_itself_with_help(command: str) -> None:
    """``streamer <command> --help`` exits 0 with a usage line."""
    code, out, _ = await streamer(dict(os.environ), command, "--help")
    assert code == 0
    assert out.startswith(f"usage: streamer {command}")


@pytest.mark.parametrize(
    ("key", "value"),
    [("STREAMER_BATCH_SIZE", "abc"), ("STREAMER_MONGODB_URI", "http://x")],
)
async def test_invalid_settings_exit_2_naming_the_key(key: str, value: str) -> None:
    """One line on stderr names the bad key; no traceback."""
    code, _, err = await streamer({**os.environ, key: value}, "status")
    assert code == 2
    assert key.removeprefix("STREAMER_").lower() in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


async def test_an_unreachable_database_fails_in_one_line_without_the_password() -> None:
    """The URI's password appears nowhere, even when the connection fails."""
    env = env_for(
        "mongodb://user:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=300",
        "x",
        STREAMER_SERVER_SELECTION_TIMEOUT_MS="300",
        STREAMER_RETRY_MAX_S="1",
    )
    code, out, err = await streamer(env, "status")
    assert code == 1
    assert "s3cret" not in out + err
    assert "Traceback" not in err


async def test_bootstrap_applies_once_then_reports_no_changes(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str
) -> None:
    """First run creates; second run and --check find nothing to do."""
    env = env_for(mongo_uri, db.name)
    code, out, _ = await streamer(env, "bootstrap")
    assert code == 0 and "create" in out
    code, out, _ = await streamer(env, "bootstrap")
    assert code == 0 and "schema up to date: no changes" in out
    code, _, _ = await streamer(env, "bootstrap", "--check")
    assert code == 0


async def test_bootstrap_check_on_a_fresh_database_reports_drift_and_changes_nothing(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str
) -> None:
    """--check is read-only and exits 1 on drift."""
    code, out, _ = await streamer(env_for(mongo_uri, db.name), "bootstrap", "--check")
    assert code == 1 and "drift" in out
    assert await db.list_collection_names() == []


async def test_run_status_verify_and_a_clean_sigterm(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str
) -> None:
    """The service applies writes, status and verify see it, SIGTERM stops it with 0."""
    env = env_for(mongo_uri, db.name, STREAMER_SHUTDOWN_GRACE_S="5")
    proc = await spawn(env, "run")
    try:
        await db.orders.insert_one({"user_id": "c", "amount": 3, "status": "completed"})
        await db.inventory.insert_one({"_id": "p", "sku": "P", "name": "P", "stock": 2})
        await caught_up(db, within_s=30)
        code, out, _ = await streamer(env, "status")
        assert code == 0
        assert "orders: phase=stream" in out and "inventory: phase=stream" in out
        code, out, _ = await streamer(env, "verify")
        assert code == 0 and "0 differences" in out
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0
    events = [e["event"] for e in log_events(err.decode())]
    assert "service.stopping" in events and events[-1] == "service.stopped"
    totals = await db.user_totals.find_one({"_id": "c"})
    assert totals is not None and totals["total"] == Decimal128("3")


async def test_verify_finds_tampering_and_a_fresh_resync_repairs_it(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str
) -> None:
    """A hand-edited total is drift (exit 1, named); resync --fresh rebuilds it."""
    env = env_for(mongo_uri, db.name)
    await db.orders.insert_one({"user_id": "t", "amount": 5, "status": "completed"})
    code, out, _ = await streamer(env, "resync")
    assert code == 0 and "orders: resynced" in out and "inventory: resynced" in out
    await db.user_totals.update_one({"_id": "t"}, {"$set": {"total": Decimal128("999")}})
    code, out, _ = await streamer(env, "verify")
    assert code == 1 and "user_totals 't': total" in out
    code, out, _ = await streamer(env, "resync", "--stream", "orders", "--fresh")
    assert code == 0 and "orders: resynced" in out and "inventory" not in out
    code, out, _ = await streamer(env, "verify")
    assert code == 0, out


async def test_the_demo_serves_metrics_and_stops_cleanly_on_ctrl_c() -> None:
    """`make run`'s command: mongosim, service and traffic; SIGINT ends it with 0."""
    http_port = free_port()
    env = {**os.environ, "STREAMER_HTTP_PORT": str(http_port)}
    proc = await spawn(env, "demo", "--port", str(free_port()))
    assert proc.stdout is not None
    try:
        line = b""
        while b"metrics at" not in line:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "the demo exited before serving metrics"
        assert f"http://127.0.0.1:{http_port}/metrics".encode() in line
        async with aiohttp.ClientSession() as http:
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                async with http.get(f"http://127.0.0.1:{http_port}/metrics") as response:
                    body = await response.text()
                if 'streamer_events_applied_total{op="insert",stream="orders"}' in body:
                    break
                assert asyncio.get_running_loop().time() < deadline, body[-2000:]
                await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"stopped" in out

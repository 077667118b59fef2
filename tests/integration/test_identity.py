"""One owner per stream whatever the instance ids: two ``streamer run`` processes with the
same id (two on one host with the defaults, or one STREAMER_INSTANCE_ID given twice),
and a process restarted under its id after a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import random
import re
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify
from tests.support.cli import free_port
from tests.support.model import Traffic, expected_totals, totals_differences
from tests.support.polling import eventually
from tests.support.service import caught_up, test_settings
from tests.support.service_process import ServiceProcess

STREAMS = {"orders", "inventory"}
OWNED = re.compile(
    r'^streamer_stream_owned\{owner="([^"]*)",partition="[^"]*",stream="([^"]*)"\} (\S+)$', re.M
)
SAME_ID = "held by this instance id under another process (nonce "


class LoggedProcess(ServiceProcess):
    """``streamer run`` at INFO level, its log in a file (a pipe nobody reads could fill
    and stall it), its /metrics on a known port."""

    def __init__(self, uri: str, database: str, log: Path, **settings: Any) -> None:
        self.port = free_port()
        # A slow command on a loaded test machine is a real warning, but not these
        # tests' subject: the log's warnings are asserted on.
        quiet = {"slow_command_ms": 60_000, **settings}
        super().__init__(uri, database, http_port=self.port, log_level="INFO", **quiet)
        if "instance_id" not in settings:
            self.env.pop("STREAMER_INSTANCE_ID", None)  # the default: the host name
        self.log = log

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streamer",
                "run",
                cwd=tempfile.gettempdir(),
                env=self.env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=out,
            )

    async def stop(self, within_s: float = 30.0) -> tuple[int, str]:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.proc.wait(), within_s)
        return code, self.log.read_text()[-3000:]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        # Whole lines only: the process may be writing the last one right now.
        lines = self.log.read_text().split("\n")[:-1]
        events = [json.loads(line) for line in lines if line]
        return [e for e in events if name is None or e.get("event") == name]

    @property
    def nonce(self) -> str:
        [started] = self.events("service.starting")
        return str(started["process"])

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}/metrics") as response,
        ):
            return await response.text()

    async def owned(self) -> dict[str, bool]:
        """stream -> whether this process owns it, from its /metrics ({} before it runs)."""
        try:
            text = await self.metrics()
        except aiohttp.ClientError:
            return {}
        return {stream: float(value) == 1 for _, stream, value in OWNED.findall(text)}

    async def lease_polls(self) -> float:
        """findAndModify round trips: a standby's lease polls (it runs nothing else)."""
        pattern = (
            r'^streamer_mongodb_command_duration_seconds_count\{command="findAndModify"\} (\S+)$'
        )
        found = re.search(pattern, await self.metrics(), re.M)
        return float(found.group(1)) if found else 0.0


async def exact(db: AsyncIOMotorDatabase[Any], traffic: Traffic, uri: str) -> list[Any]:
    """Every difference between the derived data and the writes made."""
    final = await db.orders.find().to_list(None)
    problems: list[Any] = totals_differences(
        expected_totals(final), await db.user_totals.find().to_list(None)
    )
    problems += await traffic.alert_differences()
    async with Mongo(test_settings(uri, db.name).mongo_options()) as mongo:
        if (await verify(mongo, default_threshold=10)).drift:
            problems.append("verify: drift")
    return problems


@pytest.mark.parametrize(
    ("instance_id", "driver"),
    [(None, "motor"), ("twin", "pymongo")],
    ids=["host-name-default", "same-STREAMER_INSTANCE_ID"],
)
async def test_two_live_processes_with_one_instance_id_never_both_own_a_stream(
    db: AsyncIOMotorDatabase[Any],
    mongo_uri: str,
    tmp_path: Path,
    instance_id: str | None,
    driver: str,
) -> None:
    """The second stands by, says why once per stream, and the totals stay exact."""
    ids = {"instance_id": instance_id} if instance_id else {}
    # The default TTL: renewed every 5 s; the twin takes over only after 7.5 s without a
    # renewal, 2.5 s of headroom for a late renewal on a loaded machine.
    a, b = (
        LoggedProcess(
            mongo_uri, db.name, tmp_path / f"{n}.log", lease_ttl_s=15, driver=driver, **ids
        )
        for n in "ab"
    )
    traffic = Traffic(db, random.Random(17))
    await a.start()
    await eventually(
        lambda: _owns(a, STREAMS), within_s=60, what="the first process never owned both streams"
    )
    await caught_up(db, within_s=60)  # the first start's resync done before any traffic
    await b.start()
    await eventually(lambda: _owns(b, set()), within_s=60, what="the second process never came up")
    samples = 0

    async def sampled() -> bool:
        """Traffic, then who owns what; done once the twin has polled enough."""
        nonlocal samples
        for _ in range(25):
            await traffic.step()
        assert await a.owned() == dict.fromkeys(STREAMS, True)
        assert await b.owned() == dict.fromkeys(STREAMS, False)
        samples += 1
        return await b.lease_polls() >= 6

    # Both streams poll every 2.5 s: 6 polls is three rounds each, all while traffic runs.
    await eventually(sampled, within_s=60, what="6 lease polls by the twin under traffic")
    code, err = await b.stop()
    assert code == 0, err
    await caught_up(db, within_s=60)
    code, err = await a.stop()
    assert code == 0, err

    expected_id = instance_id or socket.gethostname()
    assert {e["instance"] for e in a.events("service.starting") + b.events("service.starting")} == {
        expected_id
    }
    standby = b.events("lease.standby")
    assert sorted(e["stream"] for e in standby) == sorted(STREAMS), standby  # once each
    for line in standby:
        assert line["level"] == "warning" and line["reason"].startswith(f"{SAME_ID}{a.nonce})")
    assert not b.events("lease.acquired") and not b.events("lease.taken_over")
    # A clean first start with a twin standing by: nothing for the owner to warn about,
    # its first start's resync included.
    noisy = [e for e in a.events() if e["level"] in ("warning", "error", "critical")]
    assert not noisy, noisy
    assert [e["level"] for e in a.events("resync.started")] == ["info", "info"]
    problems = await exact(db, traffic, mongo_uri)
    print(f"same id ({expected_id}): {samples} samples, {traffic.events} events, {problems}")
    assert not problems, problems[:20]


async def test_a_restarted_process_takes_its_streams_back_at_once(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, tmp_path: Path
) -> None:
    """SIGKILL, then the same id again on this machine: its predecessor is seen to be
    gone, so its leases are taken at the first poll (no standby, no wait for them to go
    unrenewed or expire), and its predecessor's writer sessions are killed."""
    ttl_s = 15.0  # the default: unrenewed after 7.5 s, expired after 15 s
    make = lambda log: LoggedProcess(  # noqa: E731 - the same pod, twice
        mongo_uri, db.name, tmp_path / log, instance_id="pod-0", lease_ttl_s=ttl_s
    )
    first, second = make("first.log"), make("second.log")
    traffic = Traffic(db, random.Random(23))
    await first.start()
    await eventually(
        lambda: _owns(first, STREAMS), within_s=60, what="the first process never owned both"
    )
    await caught_up(db, within_s=60)  # the first start's resync done before any traffic
    for _ in range(300):
        await traffic.step()
    await first.kill()
    killed = time.monotonic()
    await second.start()

    async def regained() -> bool:
        await traffic.step()
        leases = await db.streamer_leases.find().to_list(None)
        return {d["_id"] for d in leases if d.get("nonce") == second.nonce} == STREAMS

    await eventually(
        lambda: _started(second), within_s=60, what="the restarted process never started"
    )
    await eventually(
        regained, within_s=60, what="the restarted process never took its streams back"
    )
    took = time.monotonic() - killed
    leases = await db.streamer_leases.find().to_list(None)
    for _ in range(300):
        await traffic.step()
    await caught_up(db, within_s=60)
    code, err = await second.stop()
    assert code == 0, err

    # "gone": taken because the predecessor was seen to have exited, not after a wait.
    assert {d["_id"]: d["handover"] for d in leases} == dict.fromkeys(STREAMS, "gone")
    assert {d["previous_nonce"] for d in leases} == {first.nonce}
    assert not second.events("lease.standby")
    taken = second.events("lease.taken_over")
    assert sorted(e["stream"] for e in taken) == sorted(STREAMS), taken
    assert all(e["level"] == "warning" and e["previous_nonce"] == first.nonce for e in taken)
    killed_sessions = second.events("session.previous_killed")
    assert sorted(e["stream"] for e in killed_sessions) == sorted(STREAMS), killed_sessions
    problems = await exact(db, traffic, mongo_uri)
    print(f"restart: streams regained {took:.2f}s after the SIGKILL (TTL {ttl_s:g}s), {problems}")
    # The handover proves there was no wait; this bounds the restart itself loosely.
    # Measured 0.8-1.5 s (the new process's start, connect and bootstrap); a lease left
    # to go unrenewed would have taken at least 7.5 s, 5x that.
    assert took < ttl_s / 2
    assert not problems, problems[:20]


async def _owns(process: LoggedProcess, streams: set[str]) -> bool:
    owned = await process.owned()
    return set(owned) == STREAMS and {s for s, mine in owned.items() if mine} == streams


async def _started(process: LoggedProcess) -> bool:
    return process.log.exists() and bool(process.events("service.starting"))

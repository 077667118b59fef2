"""The service as a child process (``python -m streamer run``), for crash tests."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.runtime.leases import LIVE_EXPR
from tests.support.model import Traffic, drive

from .polling import eventually

ROOT = Path(__file__).resolve().parents[2]


# Every process a test started: what a failed test left running is killed at its end
# (tests/conftest.py), so no orphan keeps reconnecting to a server that is gone.
STARTED: set[ServiceProcess] = set()


async def kill_leftovers() -> None:
    """SIGKILL (after a SIGCONT, should one be paused) every started process still up."""
    for process in list(STARTED):
        proc = process.proc
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    STARTED.clear()


class ServiceProcess:
    """Start, SIGKILL and restart ``streamer run`` against one database."""

    def __init__(self, uri: str, database: str, **settings: Any) -> None:
        self.env = {
            **os.environ,
            "STREAMER_MONGODB_URI": uri,
            "STREAMER_DATABASE": database,
            "STREAMER_LOG_FORMAT": "json",
            "STREAMER_LOG_LEVEL": os.environ.get("CRASH_LOG_LEVEL", "WARNING"),
            "STREAMER_MAX_BATCH_WAIT_MS": "50",
            "STREAMER_IDLE_CHECKPOINT_INTERVAL_S": "0.2",
            "STREAMER_FOLD_POLL_S": "0.1",
            "STREAMER_HTTP_PORT": "0",
            **{f"STREAMER_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.kills = 0

    async def start(self) -> None:
        assert self.proc is None or self.proc.returncode is not None
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "streamer",
            "run",
            cwd=tempfile.gettempdir(),  # never the repository: defaults come from the package
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        STARTED.add(self)

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs.

        A service that had already exited by itself is a bug for the test to show, not a
        kill to skip in silence: that fails with its exit code and the end of its log. A
        second kill of a process this object killed already (a test's cleanup) does nothing.
        """
        assert self.proc is not None
        if self.proc.returncode == -signal.SIGKILL:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        _, err = await self.proc.communicate()
        # returncode was None above even for a process that had exited but was not yet
        # reaped: only -SIGKILL after the wait says that this kill is what ended it.
        if self.proc.returncode != -signal.SIGKILL:
            raise AssertionError(
                f"the service had exited by itself (code {self.proc.returncode}) before its "
                f"SIGKILL: {err.decode(errors='replace')[-3000:]}"
            )
        self.kills += 1

    async def until_standing_by(self, within_s: float = 60.0) -> None:
        """Poll ``/readyz`` until every stream's check is "standby": the process is up and
        tries each lease every third of the TTL, so it takes over within one try of the
        lease coming free. Started with ``http_port=free_port()``.

        A test that kills or stops the owner must wait for this, not for a number of
        events: a standby started a moment ago may still be importing Python (1-2 s on
        a loaded 2-core machine), and its start-up would count as takeover time.
        """
        assert self.proc is not None
        port = int(self.env["STREAMER_HTTP_PORT"])
        assert port, "until_standing_by needs the service started with http_port=free_port()"
        checks: dict[str, str] = {}

        async def standing_by() -> bool:
            nonlocal checks
            with suppress(aiohttp.ClientError):
                async with http.get(f"http://127.0.0.1:{port}/readyz") as reply:
                    checks = (await reply.json())["checks"]
            streams = {k: v for k, v in checks.items() if k not in ("database", "bootstrap")}
            if streams and set(streams.values()) == {"standby"}:
                return True
            assert self.proc is not None and self.proc.returncode is None, (
                "the standby exited while starting"
            )
            return False

        async with aiohttp.ClientSession() as http:
            await eventually(
                standing_by, what="standing by", within_s=within_s, detail=lambda: checks
            )

    async def wait(self, within_s: float = 30.0) -> tuple[int, str]:
        """Wait for the process to exit by itself: the exit code and stderr."""
        assert self.proc is not None
        _, err = await asyncio.wait_for(self.proc.communicate(), within_s)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode(errors="replace")

    def pause(self) -> None:
        """SIGSTOP: the process holds its leases and connections but runs nothing."""
        assert self.proc is not None and self.proc.returncode is None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    async def stop(self, within_s: float = 30.0) -> tuple[int, str]:
        """SIGTERM and wait: the exit code and stderr."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.proc.communicate(), within_s)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode(errors="replace")


@dataclass
class Kills:
    """The SIGKILLs of one run, by where they landed."""

    working: int = 0  # after the process had stored a checkpoint: mid-stream
    starting: int = 0  # anywhere in the start-up: imports, connect, lease, first batches

    @property
    def total(self) -> int:
        return self.working + self.starting


async def checkpoint_versions(db: AsyncIOMotorDatabase[Any]) -> tuple[int, int]:
    """(sum of the streams' checkpoint versions, number of checkpoints).

    Every batch or idle checkpoint an instance stores adds one to a version, so the sum
    moving shows some process at work.
    """
    versions = [d.get("version", 0) async for d in db.streamer_checkpoints.find({})]
    return sum(versions), len(versions)


async def sigkills_under_traffic(
    service: ServiceProcess,
    traffic: Traffic,
    rng: random.Random,
    *,
    events: int,
    kills: int,
    starting_share: float = 0.25,
    within_s: float = 60.0,
) -> Kills:
    """Traffic with SIGKILLs of ``service``, until both ``events`` writes and ``kills``
    mid-stream kills are done; each kill is followed by a restart.

    Kills are placed by counts of events, never by the clock, so how many land does not
    depend on the machine's speed. A mid-stream kill waits until the restarted process
    has stored a checkpoint (it is past its imports, connected and owns a stream), then
    lands 1-400 events later, at a random point of its batch cycle. Clock-spaced kills
    0.1-0.6 s apart, as the crash tests once had, almost all landed during the process's
    Python imports (about 1 s on the 2-core machine), before it had logged a line. A
    share of the kills (``starting_share``) lands 0-1500 events after the start instead,
    anywhere in the start-up.
    """
    done = Kills()
    while traffic.events < events or done.working < kills:
        starting = rng.random() < starting_share
        if starting:
            await drive(traffic, rng.randint(0, 1500))
        else:
            await until_working(service, traffic, within_s)
            await drive(traffic, rng.randint(1, 400))
        await service.kill()
        await service.start()
        if starting:
            done.starting += 1
        else:
            done.working += 1
    return done


async def until_working(service: ServiceProcess, traffic: Traffic, within_s: float) -> None:
    """Traffic until the running process has stored checkpoints of its own.

    A process SIGKILLed just before may still have one checkpoint write per stream in
    flight, which the server can apply after its death: the sum must move by more than
    that before the new process is known to be at work.
    """
    before, streams = await checkpoint_versions(traffic.db)

    async def working() -> bool:
        if (await checkpoint_versions(traffic.db))[0] > before + streams:
            return True
        await drive(traffic, 20)
        return False

    try:
        # No pause between checks: the traffic each check drives is the pacing.
        await eventually(
            working,
            what="a checkpoint stored by the restarted service",
            within_s=within_s,
            interval_s=0,
        )
    except AssertionError as exc:
        _, err = await service.stop()
        raise AssertionError(f"{exc}: {err[-3000:]}") from None


async def live_leases(db: Any) -> dict[str, str]:
    """Each live lease's holder, by the server's clock (released ones are not live)."""
    return {d["_id"]: d["owner"] async for d in db.streamer_leases.find({"$expr": LIVE_EXPR})}


async def owners(db: AsyncIOMotorDatabase[Any]) -> dict[str, str]:
    """Each leased stream's owner."""
    return {d["_id"]: d["owner"] async for d in db.streamer_leases.find()}


async def until_owned_by(db: AsyncIOMotorDatabase[Any], owner: str, within_s: float) -> float:
    """Seconds until ``owner`` holds both leases."""
    started = time.monotonic()

    async def both_owned() -> bool:
        return await owners(db) == {"orders": owner, "inventory": owner}

    await eventually(
        both_owned,
        what=f"both leases owned by {owner}",
        within_s=within_s,
        detail=lambda: owners(db),
    )
    return time.monotonic() - started

"""``streamer demo`` (what ``make run`` runs) as a subprocess; the other commands are in
test_cli.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import aiohttp

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

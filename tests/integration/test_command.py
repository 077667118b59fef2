"""``streamer demo`` (what ``make run`` runs) as a subprocess; the other commands are in
test_cli.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import aiohttp

from .test_cli import spawn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def inserts_applied(http_port: int, within_s: float = 30) -> None:
    """Poll the service's /metrics until it has applied an order insert."""
    metrics = f"http://127.0.0.1:{http_port}/metrics"
    deadline = asyncio.get_running_loop().time() + within_s
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(metrics) as response:
                body = await response.text()
            if 'streamer_events_applied_total{op="insert",stream="orders"}' in body:
                return
            assert asyncio.get_running_loop().time() < deadline, body[-2000:]
            await asyncio.sleep(0.2)


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
        await inserts_applied(http_port)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"stopped" in out

"""``streamer demo`` (what ``make run`` runs) as a subprocess; the other commands are in
test_cli.py."""

from __future__ import annotations

import asyncio
import os
import signal

from tests.support.cli import free_port, inserts_applied, spawn


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

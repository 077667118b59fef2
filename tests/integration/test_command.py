"""``streamer demo`` (what ``make run`` runs) as a subprocess, on one member and on
three; the other commands are in test_cli.py."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference

from streamer.commands.cli import build_parser
from tests.support.cli import free_port, inserts_applied, spawn
from tests.support.polling import eventually


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


async def test_the_demo_with_three_members_runs_the_service_against_the_set() -> None:
    """`streamer demo --members 3`: the URI lists the three members with replicaSet, the
    service applies events through the set's primary, and what it writes replicates."""
    http_port = free_port()
    env = {**os.environ, "STREAMER_HTTP_PORT": str(http_port), "STREAMER_DATABASE": "demo3"}
    proc = await spawn(env, "demo", "--port", "0", "--members", "3")
    assert proc.stdout is not None
    client: AsyncIOMotorClient[Any] | None = None
    try:
        seen: list[str] = []
        while not seen or "metrics at" not in seen[-1]:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, f"the demo exited before serving metrics: {seen}"
            seen.append(line.decode())
        [announced] = [s for s in seen if s.startswith("mongosim at ")]
        uri = announced.split()[2]
        hosts = uri.removeprefix("mongodb://").split("/")[0].split(",")
        assert len(set(hosts)) == 3 and uri.endswith("?replicaSet=rs0"), announced
        assert "with 3 members" in announced
        await inserts_applied(http_port)
        # The service's checkpoints, written on the primary, reach a secondary.
        client = AsyncIOMotorClient(uri)
        on_secondary = client.demo3.get_collection(
            "streamer_checkpoints", read_preference=ReadPreference.SECONDARY
        )
        await eventually(
            lambda: on_secondary.count_documents({}), what="checkpoints on a secondary"
        )
        assert len(client.nodes) == 3  # the driver discovered every member
    finally:
        if client is not None:
            client.close()
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
    assert b"stopped" in out


@pytest.mark.parametrize("value", ["0", "-1", "three"])
def test_demo_members_must_be_a_whole_number_of_at_least_one(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["demo", "--members", value])
    assert exited.value.code == 2
    assert "--members: must be a whole number of at least 1" in capsys.readouterr().err

"""Every stop and every early error is prompt, clean and one line (``streamer`` as a process).

The first SIGTERM/SIGINT stops gracefully in every phase (exit 0; a one-shot command
exits 130); a second exits at once with ``forced stop`` and exit 3. Bad configuration,
a malformed URI and a taken HTTP port fail before any connection, with one line and
exit 2. Each test waits on the process with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from tests.support.cli import (
    SECRET,
    cli_env,
    finish,
    json_events,
    plain_lines,
    read_until,
    spawn,
    streamer,
)
from tests.support.failpoints import FailPoint
from tests.support.polling import eventually

UNREACHABLE = f"mongodb://user:{SECRET}@127.0.0.1:1/?serverSelectionTimeoutMS=300"


def unreachable_env(**extra: str) -> dict[str, str]:
    settings = {"STREAMER_SERVER_SELECTION_TIMEOUT_MS": "300", "STREAMER_RETRY_MAX_S": "1"}
    return cli_env(UNREACHABLE, "x", **{**settings, **extra})


# A one-shot command's Ctrl-C and a forced stop end the process "at once": measured
# 0.005-0.05 s from the signal to the exit on the shared 2-core machine, 0.009-0.14 s
# with two busy loops beside it (5 runs each). 1.5 s leaves over 10 times the worst.
AT_ONCE_S = 1.5
# The demo with a taken port, timed from the spawn, so Python's start-up and the
# demo's imports and mongosim's start are in it: measured 0.6-1.4 s, and 1.0-4.7 s with
# two busy loops. 15 s is 3 times the worst: it catches a demo that waits on something
# (a retry budget, a hang). That the port fails before any connection is shown by
# events, in test_a_taken_http_port_fails_before_connecting_naming_port_and_setting.
DEMO_FAILS_WITHIN_S = 15.0


# -- the first signal, in every phase -----------------------------------------------------


# SIGTERM to exit, measured on the shared 2-core project machine (30 runs per driver
# and phase, in the first ping and in the backoff after the first failed one, with a
# 0.3 s server selection timeout): 0.005-0.12 s. The bound is the README's promise, 1 s:
# over 8 times the worst measured figure, room for a loaded machine.
STOP_BOUND_S = 1.0
HINT = (
    "cannot reach MongoDB at mongodb://user:***@127.0.0.1:1/?serverSelectionTimeoutMS=300 "
    "within 0.3 s (STREAMER_SERVER_SELECTION_TIMEOUT_MS); check STREAMER_MONGODB_URI and "
    "network access to it"
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("phase", ["service.http", "service.database_unreachable"])
async def test_a_signal_while_the_database_is_unreachable_stops_run_within_a_second(
    signum: int, phase: str
) -> None:
    """In the first ping (after ``service.http``) or in the backoff after a failed one
    (after ``service.database_unreachable``): exit 0 within a second, no retry budget."""
    proc = await spawn(unreachable_env(STREAMER_RETRY_MAX_S="30"), "run")
    await read_until(proc, phase, within_s=30)
    proc.send_signal(signum)
    code, err, took = await finish(proc, within_s=10)
    assert code == 0, err
    assert took < STOP_BOUND_S, f"stopped after {took:.2f}s"
    assert "Traceback" not in err


async def test_the_first_failed_connect_is_the_one_clear_line_at_once() -> None:
    """The line after ``service.http`` is ``service.database_unreachable`` for attempt 1:
    the redacted URI, the timeout and what to check; no retry lines come before it."""
    proc = await spawn(unreachable_env(STREAMER_RETRY_MAX_S="30"), "run")
    await read_until(proc, "service.http", within_s=30)
    started = time.monotonic()
    # The first attempt ends after one 0.3 s server selection timeout: measured 0.4-0.5 s
    # from service.http to this line. 20 s only detects a hang (a retry budget before
    # the line, as there was, took ~50 s); what is asserted is the line's place.
    seen = await read_until(proc, "service.database_unreachable", within_s=20)
    took = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    code, err, _ = await finish(proc, within_s=10)
    assert code == 0, err
    [event] = json_events(seen)  # the very next line after service.http
    assert event["event"] == "service.database_unreachable", event
    assert event["error"] == HINT
    assert event["attempt"] == 1 and event["reason"] == "ServerSelectionTimeoutError"
    assert 0 < event["unreachable_for_s"] <= took + 1
    assert SECRET not in seen + err


async def test_readyz_says_for_how_long_and_why_the_database_is_unreachable() -> None:
    proc = await spawn(unreachable_env(), "run")
    try:
        *_, http = json_events(await read_until(proc, "service.http", within_s=30))
        await read_until(proc, "service.database_unreachable", within_s=20)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http['port']}/readyz") as reply,
        ):
            status, body = reply.status, await reply.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        code, err, _ = await finish(proc, within_s=10)
    assert code == 0, err
    assert status == 503 and body["ready"] is False
    assert body["checks"]["bootstrap"] == "pending"
    database = body["checks"]["database"]
    assert re.fullmatch(r"unreachable for \d+s: .*", database), database
    assert database.endswith(f": {HINT}"), database


@pytest.mark.parametrize("command", ["status", "verify", "bootstrap"])
async def test_one_shot_commands_on_an_unreachable_database_exit_1_with_the_hint(
    command: str,
) -> None:
    code, out, err = await streamer(unreachable_env(), command, within_s=30)
    assert code == 1, (out, err)
    assert plain_lines(err) == [
        f"streamer {command}: cannot reach MongoDB at "
        "mongodb://user:***@127.0.0.1:1/?serverSelectionTimeoutMS=300 within 0.3 s "
        "(STREAMER_SERVER_SELECTION_TIMEOUT_MS); check STREAMER_MONGODB_URI and network "
        "access to it"
    ]


async def test_a_signal_to_a_one_shot_command_exits_130_with_one_line() -> None:
    """``streamer status`` waiting on server selection: Ctrl-C ends it at once."""
    env = unreachable_env(STREAMER_SERVER_SELECTION_TIMEOUT_MS="30000")
    proc = await spawn(
        {**env, "STREAMER_MONGODB_URI": "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=30000"},
        "status",
    )
    await handlers_installed(proc)
    proc.send_signal(signal.SIGINT)
    code, err, took = await finish(proc, within_s=10)
    assert code == 130, err
    assert plain_lines(err) == ["streamer status: interrupted"]
    assert took < AT_ONCE_S, f"stopped after {took:.2f}s"


def catches_sigterm(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        caught = next(line for line in status if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


async def handlers_installed(proc: asyncio.subprocess.Process) -> None:
    """Poll /proc until the process catches SIGTERM: its asyncio handlers are in place."""
    await eventually(
        lambda: catches_sigterm(proc.pid),
        what="the command's signal handlers installed",
        within_s=30,
        interval_s=0.02,
    )


# -- the second signal --------------------------------------------------------------------


@pytest.mark.failpoints
async def test_a_second_signal_forces_the_stop_with_one_line_and_exit_3(
    db: AsyncIOMotorDatabase[Any], mongo_uri: str, fail_point: FailPoint
) -> None:
    """A batch stuck in its commit holds the graceful stop; the second signal does not wait."""
    env = cli_env(mongo_uri, db.name, STREAMER_SHUTDOWN_GRACE_S="60")
    proc = await spawn(env, "run")
    await read_until(proc, '"stream.resumed"', within_s=60)
    block = {
        "mode": "alwaysOn",
        "data": {
            "failCommands": ["commitTransaction"],
            "blockConnection": True,
            "blockTimeMS": 20_000,
            "appName": "streamer",
        },
    }
    async with fail_point(block):
        await db.orders.insert_one({"user_id": "u", "amount": 1, "status": "completed"})
        await commit_blocked(db, block)
        proc.send_signal(signal.SIGTERM)
        await read_until(proc, "service.stopping", within_s=10)
        proc.send_signal(signal.SIGTERM)
        code, err, took = await finish(proc, within_s=5)
    assert code == 3, err
    assert plain_lines(err) == ["streamer: forced stop"]
    assert took < AT_ONCE_S, f"stopped after {took:.2f}s"


async def commit_blocked(db: AsyncIOMotorDatabase[Any], block: dict[str, Any]) -> None:
    """Poll until the fail point has fired: the batch is stuck in its commit.

    configureFailPoint answers with ``count``, how often the fail point fired under its
    previous setting (mongod does the same); setting it again to the same keeps it on.
    """

    async def fired() -> bool:
        reply = await db.client.admin.command({"configureFailPoint": "failCommand", **block})
        return bool(reply.get("count", 0) > 0)

    await eventually(
        fired, what="the batch stuck in commitTransaction", within_s=30, interval_s=0.02
    )


# -- failing fast, before serving ---------------------------------------------------------


async def test_a_taken_http_port_fails_before_connecting_naming_port_and_setting(
    taken_port: int,
) -> None:
    code, _, err = await streamer(
        unreachable_env(STREAMER_HTTP_PORT=str(taken_port)), "run", within_s=30
    )
    assert code == 2, err
    assert plain_lines(err) == [
        f"streamer run: cannot listen on port {taken_port} (STREAMER_HTTP_PORT): "
        "Address already in use"
    ]
    assert "service.database_unreachable" not in err  # no connection was tried


SCHEMA_YAML_ERROR = "collections:\n  orders:\n    indexes: [{name: a, keys: [[x, 1]]]\n"
SCHEMA_CONTENT_ERROR = (
    "collections:\n  orders:\n    indexes:\n"
    "      - {name: ttl, keys: [[at, 1]], expireAfterSeconds: -5}\n"
)


@pytest.mark.parametrize(
    ("command", "text", "problem"),
    [
        *[
            (command, SCHEMA_YAML_ERROR, ":3:39: invalid YAML: expected ',' or '}', but got ']'")
            for command in ("run", "bootstrap", "status", "verify", "resync", "demo")
        ],
        *[
            (
                command,
                SCHEMA_CONTENT_ERROR,
                ": collections.orders.indexes[0].expireAfterSeconds: "
                "must be a non-negative integer",
            )
            for command in ("run", "bootstrap")
        ],
    ],
)
async def test_a_bad_schema_is_one_line_and_exit_2_before_anything_even_unreachable(
    tmp_path: Path, command: str, text: str, problem: str
) -> None:
    """Like a bad config file: checked before any command logs, serves or connects, so an
    unreachable database does not hide it and nothing is logged as started."""
    schema = tmp_path / "schema.yaml"
    schema.write_text(text)
    args = ("demo", "--port", "0") if command == "demo" else (command,)
    code, out, err = await streamer(unreachable_env(STREAMER_SCHEMA_PATH=str(schema)), *args)
    assert code == 2, err
    assert err.splitlines() == [f"streamer: {schema}{problem}"]
    assert out == ""  # not even the demo's "logs:" line


async def test_a_missing_schema_file_names_the_setting_before_connecting(tmp_path: Path) -> None:
    code, _, err = await streamer(
        unreachable_env(STREAMER_SCHEMA_PATH=str(tmp_path / "missing.yaml")), "run"
    )
    assert code == 2, err
    assert err.splitlines() == [
        f"streamer: cannot read schema file {tmp_path / 'missing.yaml'}: No such file or "
        "directory (STREAMER_SCHEMA_PATH)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("database: x\nbatch_size: [1\n", ":3:1: invalid YAML: expected ',' or ']'"),
        ("- database\n- x\n", ": the top level must be a mapping of settings"),
    ],
)
async def test_a_broken_config_file_is_one_line_with_where_and_exit_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "streamer.yaml"
    config.write_text(text)
    code, _, err = await streamer(unreachable_env(STREAMER_CONFIG=str(config)), "run")
    assert code == 2
    assert plain_lines(err) == [line for line in err.splitlines() if line.strip()]
    [line] = plain_lines(err)
    assert line.startswith(f"streamer: {config}{expected}"), line


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        (f"mongodb://user:{SECRET}@", "Empty host"),
        ("mongodb://", "Must provide at least one hostname or IP"),
        (f"mongodb+srv://user:{SECRET}@cluster0.example.net:27017", "must not include a port"),
        ("postgres://h/db", "Invalid URI scheme"),
    ],
)
async def test_a_malformed_uri_is_named_as_the_variable_with_the_password_redacted(
    uri: str, problem: str
) -> None:
    code, _, err = await streamer(cli_env(uri, "x"), "run")
    assert code == 2
    [line] = plain_lines(err)
    assert line.startswith("streamer: STREAMER_MONGODB_URI: "), line
    assert problem in line and SECRET not in err
    assert "service.starting" not in err  # before the HTTP port or anything else


@pytest.mark.parametrize("source", ["file", "environment"])
async def test_a_bad_setting_is_named_by_where_its_value_came_from(
    tmp_path: Path, source: str
) -> None:
    """``<file>: http_port: ...`` for the config file, ``STREAMER_HTTP_PORT: ...`` for the
    environment (which wins over the file): the line says what to edit."""
    config = tmp_path / "streamer.yaml"
    config.write_text("http_port: 70000\n" if source == "file" else "http_port: 8081\n")
    env = unreachable_env(STREAMER_CONFIG=str(config))
    if source == "file":
        del env["STREAMER_HTTP_PORT"]
    else:
        env["STREAMER_HTTP_PORT"] = "70000"
    code, out, err = await streamer(env, "run")
    assert code == 2, err
    where = f"{config}: http_port" if source == "file" else "STREAMER_HTTP_PORT"
    assert err.splitlines() == [f"streamer: {where}: Input should be less than or equal to 65535"]
    assert out == ""


async def test_an_unknown_uri_option_is_named_with_a_suggestion() -> None:
    uri = f"mongodb://user:{SECRET}@127.0.0.1:1/?maxPoolSze=5"
    code, _, err = await streamer(cli_env(uri, "x"), "status")
    assert code == 2, err
    assert err.splitlines() == [
        "streamer: STREAMER_MONGODB_URI: unknown option 'maxPoolSze' (did you mean "
        "maxPoolSize?) in mongodb://user:***@127.0.0.1:1/?maxPoolSze=5"
    ]


# -- the demo (make run) ------------------------------------------------------------------


async def demo(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await spawn(env, "demo", "--port", "0")


async def test_the_demo_with_a_taken_port_ends_at_once_with_one_line(taken_port: int) -> None:
    proc = await demo(cli_env("mongodb://unused", "demo", STREAMER_HTTP_PORT=str(taken_port)))
    code, err, took = await finish(proc, within_s=30)
    assert code == 2, err
    assert plain_lines(err) == [
        f"streamer demo: cannot listen on port {taken_port} (STREAMER_HTTP_PORT): "
        "Address already in use"
    ]
    assert took < DEMO_FAILS_WITHIN_S, f"ended after {took:.2f}s"


async def test_one_ctrl_c_stops_the_whole_demo_and_logs_never_touch_the_status_line() -> None:
    proc = await spawn(cli_env("mongodb://unused", "demo"), "demo", "--port", "0", "--keep-logs")
    assert proc.stdout is not None
    first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert first.startswith("logs: ")
    log_file = Path(first.removeprefix("logs: ").strip())
    seen = first
    while "events/s" not in seen:
        chunk = await asyncio.wait_for(proc.stdout.read(200), 60)
        assert chunk, seen
        seen += chunk.decode()
    proc.send_signal(signal.SIGINT)
    code, err, _ = await finish(proc, within_s=30)
    assert code == 0, err
    assert err.strip() == ""  # every log line went to the file
    logged = await asyncio.to_thread(log_file.read_text)
    events = [e["event"] for e in json_events(logged)]
    assert "service.starting" in events and events[-1] == "service.stopped"
    await asyncio.to_thread(shutil.rmtree, log_file.parent)  # kept by --keep-logs

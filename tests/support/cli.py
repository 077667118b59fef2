"""The ``streamer`` command as a child process: its environment, running it, reading it.

Every invocation runs ``python -m streamer`` with the settings in ``STREAMER_*``
variables, from a directory that is never the repository (the default configuration
and schema must come from the installed package), and is waited on with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from .polling import eventually

ELSEWHERE = Path(tempfile.gettempdir())
SECRET = "s3cret"  # a test password: it must never appear in output


def cli_env(uri: str, database: str, **extra: str) -> dict[str, str]:
    """The environment of one ``streamer`` invocation: fast timings, JSON logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    return {
        **env,
        "COLUMNS": "100",  # argparse wraps help text to this width
        "STREAMER_MONGODB_URI": uri,
        "STREAMER_DATABASE": database,
        "STREAMER_LOG_FORMAT": "json",
        "STREAMER_MAX_BATCH_WAIT_MS": "50",
        "STREAMER_IDLE_CHECKPOINT_INTERVAL_S": "0.2",
        "STREAMER_FOLD_POLL_S": "0.1",
        "STREAMER_HTTP_PORT": "0",
        **extra,
    }


async def spawn(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    """``streamer *args`` started, its stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "streamer",
        *args,
        cwd=ELSEWHERE,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def streamer(env: dict[str, str], *args: str, within_s: float = 60) -> tuple[int, str, str]:
    """Run ``streamer *args`` to completion: exit code, stdout, stderr."""
    proc = await spawn(env, *args)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within_s)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(
            f"`streamer {' '.join(args)}` still running after {within_s}s"
        ) from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def without_module(module: str, *args: str) -> tuple[int | None, bytes, bytes]:
    """Run ``streamer <args>`` in a child whose ``import <module>`` fails, as where the
    package is not installed: exit status, stdout, stderr."""
    hiding = (
        f"import sys; sys.modules[{module!r}] = None; "
        f"from streamer.commands.cli import main; main({list(args)!r})"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        hiding,
        cwd=ELSEWHERE,
        env=cli_env("mongodb://localhost", "x"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out, err


def json_events(stderr: str) -> list[dict[str, Any]]:
    """The structured log lines of stderr (other lines are ignored)."""
    events = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def plain_lines(stderr: str) -> list[str]:
    """The non-empty stderr lines that are not JSON log events."""
    lines = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        lines.append(line)
    return lines


async def read_lines(
    stream: asyncio.StreamReader | None,
    until: Callable[[str], bool],
    *,
    within_s: float,
    what: str,
) -> list[str]:
    """Lines read from ``stream`` up to and including the first for which ``until`` is
    true. Fails if the stream ends first or ``within_s`` passes: the process is read as
    it writes, with one deadline for the whole wait."""
    assert stream is not None
    seen: list[str] = []
    deadline = time.monotonic() + within_s
    while not seen or not until(seen[-1]):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {what} within {within_s:g}s: {''.join(seen)[-2000:]}"
        try:
            line = await asyncio.wait_for(stream.readline(), remaining)
        except TimeoutError:
            raise AssertionError(
                f"no {what} within {within_s:g}s: {''.join(seen)[-2000:]}"
            ) from None
        assert line, f"the output ended before {what}: {''.join(seen)[-2000:]}"
        seen.append(line.decode(errors="replace"))
    return seen


async def read_until(proc: asyncio.subprocess.Process, marker: str, within_s: float) -> str:
    """stderr lines up to and including the first that contains ``marker``."""
    seen = await read_lines(
        proc.stderr, lambda line: marker in line, within_s=within_s, what=repr(marker)
    )
    return "".join(seen)


async def finish(proc: asyncio.subprocess.Process, within_s: float) -> tuple[int, str, float]:
    """Wait for the exit: the code, the rest of stderr, and how long it took."""
    started = time.monotonic()
    try:
        out, err = await asyncio.wait_for(proc.communicate(), within_s)
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        raise AssertionError(f"still running {within_s}s after the signal") from None
    assert proc.returncode is not None
    assert not out.strip() or b"Traceback" not in out
    return proc.returncode, err.decode(errors="replace"), time.monotonic() - started


def free_port() -> int:
    """A TCP port nothing listens on now (the OS's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


APPLIED_INSERT = 'streamer_events_applied_total{op="insert",stream="orders"}'


async def inserts_applied(http_port: int, within_s: float = 30) -> None:
    """Poll the service's /metrics until it has applied an order insert."""
    metrics = f"http://127.0.0.1:{http_port}/metrics"
    body = ""

    async def applied() -> bool:
        nonlocal body
        async with http.get(metrics) as response:
            body = await response.text()
        return APPLIED_INSERT in body

    async with aiohttp.ClientSession() as http:
        await eventually(
            applied,
            what="an order insert applied (/metrics)",
            within_s=within_s,
            interval_s=0.2,
            detail=lambda: body[-2000:],
        )

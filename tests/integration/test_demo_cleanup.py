"""``streamer demo`` (``make run``) leaves nothing behind, however it ends.

Its log, and with ``--auth``/``--tls`` its keys and ``streamer.env``, live in one
temporary directory. Each test gives the demo a fresh ``TMPDIR`` and looks there after
the exit: empty after a stop, a failed start and a forced stop; only the log with
``--keep-logs``. The last test drives ``make run`` through a pseudo-terminal and presses
Ctrl-C, as a person would.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import cli_env, finish, json_events, plain_lines, spawn

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fresh, empty TMPDIR and the demo's environment that points at it."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return tmp, cli_env("mongodb://unused", "demo", TMPDIR=str(tmp))


async def until_status_line(proc: asyncio.subprocess.Process) -> str:
    """stdout up to the first live status line: the demo is up and its handlers are in."""
    assert proc.stdout is not None
    seen = ""
    while "events/s" not in seen:
        chunk = await asyncio.wait_for(proc.stdout.read(200), 60)
        assert chunk, f"the demo ended before its status line: {seen}"
        seen += chunk.decode()
    return seen


def log_path(stdout: str) -> Path:
    [line] = [line for line in stdout.splitlines() if line.startswith("logs: ")]
    return Path(line.removeprefix("logs: ").strip())


@pytest.mark.parametrize("flags", [(), ("--auth",)], ids=["plain", "auth"])
async def test_a_stopped_demo_leaves_nothing_in_tmpdir(
    tmpdir_env: tuple[Path, dict[str, str]], flags: tuple[str, ...]
) -> None:
    """One directory while it runs (the log; with --auth streamer.env too), none after."""
    tmp, env = tmpdir_env
    proc = await spawn(env, "demo", "--port", "0", *flags)
    seen = await until_status_line(proc)
    log = log_path(seen)
    assert log.parent.parent == tmp and log.is_file()
    assert [p.name for p in tmp.iterdir()] == [log.parent.name]  # one directory, all in it
    if flags:
        assert (log.parent / "streamer.env").is_file()
    proc.send_signal(signal.SIGINT)
    code, err, _ = await finish(proc, within_s=30)
    assert code == 0, err
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("which", ["http", "mongosim"])
async def test_a_demo_that_fails_to_start_leaves_nothing_in_tmpdir(
    tmpdir_env: tuple[Path, dict[str, str]], taken_port: int, which: str
) -> None:
    """A taken HTTP port (the service's error) or mongosim's port: one line, exit 2, and
    no empty log left over."""
    tmp, env = tmpdir_env
    if which == "http":
        env["STREAMER_HTTP_PORT"] = str(taken_port)
    port = str(taken_port) if which == "mongosim" else "0"
    code, err, _ = await finish(await spawn(env, "demo", "--port", port), within_s=30)
    assert code == 2, err
    [line] = plain_lines(err)
    assert line.startswith("streamer demo: ") and str(taken_port) in line
    assert list(tmp.iterdir()) == []


async def test_a_forced_stop_still_leaves_nothing_in_tmpdir(
    tmpdir_env: tuple[Path, dict[str, str]],
) -> None:
    """A second signal exits at once (exit 3) but takes the directory along. SIGINT then
    SIGTERM: two signal numbers, so the kernel cannot merge them into one."""
    tmp, env = tmpdir_env
    proc = await spawn(env, "demo", "--port", "0", "--auth")
    await until_status_line(proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    code, err, _ = await finish(proc, within_s=30)
    assert code == 3, err
    assert plain_lines(err) == ["streamer: forced stop"]
    assert list(tmp.iterdir()) == []


async def test_keep_logs_keeps_the_log_alone_and_says_where(
    tmpdir_env: tuple[Path, dict[str, str]],
) -> None:
    """--keep-logs: the log stays, complete, and its path is the last line; the keys and
    passwords (streamer.env) go all the same."""
    tmp, env = tmpdir_env
    proc = await spawn(env, "demo", "--port", "0", "--auth", "--keep-logs")
    seen = await until_status_line(proc)
    log = log_path(seen)
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    rest = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
    code, err, _ = await finish(proc, within_s=30)
    assert code == 0, err
    assert rest.rstrip().splitlines()[-2:] == ["stopped", f"logs kept: {log}"]
    assert [p.relative_to(tmp) for p in tmp.rglob("*")] == [
        log.parent.relative_to(tmp),
        log.relative_to(tmp),
    ]
    events = [e["event"] for e in json_events(await asyncio.to_thread(log.read_text))]
    assert "service.starting" in events and events[-1] == "service.stopped"


# -- make run in a terminal ----------------------------------------------------------------

# Run in a child of its own, so that pty.fork never forks the (threaded) test process:
# make run in a new pseudo-terminal; Ctrl-C (the byte, through the line discipline, as a
# keyboard sends it) once the status line shows; then everything make and the demo
# printed, and make's exit status, as one JSON document.
PRESS_CTRL_C = r"""
import json, os, pty, select, sys, time

def read_until(fd, buf, marker, within_s):
    deadline = time.monotonic() + within_s
    while marker not in buf and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            try:
                data = os.read(fd, 4096)
            except OSError:  # the terminal closed: every process on it has gone
                return buf, True
            if not data:
                return buf, True
            buf += data
    return buf, False

pid, fd = pty.fork()
if pid == 0:
    os.execvp("make", ["make", "--no-print-directory", "run"])
out, closed = read_until(fd, b"", b"events/s", 60)
if not closed:
    os.write(fd, b"\x03")
    out, _ = read_until(fd, out, b"\0", 30)  # to the end
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
print(json.dumps({"out": out.decode(errors="replace"), "status": code}))
"""


async def test_one_ctrl_c_ends_make_run_with_stopped_and_exit_0(tmp_path: Path) -> None:
    """What a person sees: no recipe echoed (no unexpanded ``${MONGOSIM_PORT...}``), the
    demo's ``stopped`` as the last line, make's exit 0 and no ``*** [run] Interrupt``."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    up_to_date = await asyncio.to_thread(
        subprocess.run, [make, "-q", "install"], cwd=REPOSITORY, capture_output=True
    )
    if up_to_date.returncode != 0:  # make run would install first: not this test's job
        pytest.skip("the repository's .venv is not current: run make install")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = cli_env("mongodb://unused", "demo", TMPDIR=str(tmp), MONGOSIM_PORT="0")
    for variable in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # a make above the tests
        env.pop(variable, None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PRESS_CTRL_C,
        cwd=REPOSITORY,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    shown = result["out"]
    assert "events/s" in shown, shown
    assert result["status"] == 0, shown
    assert shown.rstrip().endswith("stopped"), shown
    assert "Interrupt" not in shown and "***" not in shown, shown
    assert "MONGOSIM_PORT" not in shown and "streamer demo" not in shown, shown
    assert list(tmp.iterdir()) == []

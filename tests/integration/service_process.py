"""The service as a child process (``python -m streamer run``), for crash tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


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

    async def stop(self, within_s: float = 30.0) -> tuple[int, str]:
        """SIGTERM and wait: the exit code and stderr."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(self.proc.communicate(), within_s)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode(errors="replace")

"""mongosim in a child process, for tests that SIGKILL and restart the server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

READY = "mongosim ready "


class MongoSimProcess:
    def __init__(
        self,
        *,
        port: int = 0,
        data_dir: str | Path | None = None,
        oplog_size: int = 100_000,
        extra_args: list[str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.port = port
        self.data_dir = Path(data_dir) if data_dir else None
        self.oplog_size = oplog_size
        self.extra_args = list(extra_args or [])
        self.start_timeout = start_timeout
        self.uri = ""
        self._proc: asyncio.subprocess.Process | None = None

    def _argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "mongosim",
            "--port",
            str(self.port),
            "--oplog-size",
            str(self.oplog_size),
            *self.extra_args,
        ]
        if self.data_dir is not None:
            argv += ["--data-dir", str(self.data_dir)]
        return argv

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            *self._argv(), stdout=asyncio.subprocess.PIPE, env={**os.environ}
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), self.start_timeout)
        text = line.decode().strip()
        if not text.startswith(READY):
            raise RuntimeError(f"mongosim did not start: {text!r}")
        self.uri = text[len(READY) :]
        # Keep the same port across restarts so clients' seed lists stay valid.
        self.port = int(self.uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    @property
    def pid(self) -> int | None:
        """The running server's process id (benchmarks read its CPU time)."""
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crashed mongod."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def wait(self) -> int:
        assert self._proc is not None
        return await self._proc.wait()

    async def restart(self) -> None:
        if self._proc is not None:
            self.kill()
            await self._proc.wait()
        await self.start()

    async def stop(self) -> int | None:
        """SIGTERM and wait; the exit code."""
        if self._proc is None:
            return None
        if self._proc.returncode is None:
            self._proc.terminate()
        return await asyncio.wait_for(self._proc.wait(), 30)

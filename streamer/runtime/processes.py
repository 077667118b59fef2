"""This process as a lease records it, and whether a recorded process is gone.

A lease names its holder's instance id and a random per-process nonce (see
:mod:`streamer.runtime.leases`). When a process finds its own id holding a lease under another
nonce, that is either a live twin (two processes with one id) or its own dead
predecessor (a restart). In general it can only tell them apart by waiting: a dead
process stops renewing. But when the holder ran on this very machine and in this very
PID namespace, it can look: the lease also records the holder's boot id, PID namespace,
pid and start time, and a process with that pid and start time either exists here or
not. So a process restarted beside its predecessor (two on one host, a supervisor's
restart) takes its streams back at once. Elsewhere (another node, another container's
namespace) the answer is "cannot tell", and the lease protocol waits as before.

A namespace's inode is reused only once the namespace is gone, with every process in
it, so a match on a reused one still answers correctly: the recorded process is gone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessId:
    nonce: str  # random: tells apart processes that share an instance id
    boot: str | None = None  # the kernel's boot id: one machine, one boot
    pidns: str | None = None  # the PID namespace: pids compare within it only
    pid: int | None = None
    started: str | None = None  # start time in clock ticks since boot: pid reuse

    def document(self) -> dict[str, Any]:
        """What a lease records of its holder, beside ``nonce``."""
        return {"boot": self.boot, "pidns": self.pidns, "pid": self.pid, "started": self.started}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _start_time(pid: int, proc: Path) -> str | None:
    """Field 22 of /proc/<pid>/stat; the command name before it may hold spaces."""
    stat = _read(proc / str(pid) / "stat")
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def current(proc: Path = PROC) -> ProcessId:
    """This process; the /proc fields are None where there is no /proc (not Linux)."""
    pid = os.getpid()
    try:
        pidns: str | None = os.readlink(proc / "self" / "ns" / "pid")
    except OSError:
        pidns = None
    return ProcessId(
        nonce=secrets.token_hex(6),
        boot=_read(proc / "sys" / "kernel" / "random" / "boot_id"),
        pidns=pidns,
        pid=pid,
        started=_start_time(pid, proc),
    )


def gone(recorded: dict[str, Any] | None, here: ProcessId, proc: Path = PROC) -> bool:
    """True only when the recorded process certainly no longer runs: it ran on this
    boot, in this PID namespace, and no process with its pid and start time is left.
    False when it runs, or when that cannot be told from here."""
    if not recorded or here.boot is None or here.pidns is None:
        return False
    if recorded.get("boot") != here.boot or recorded.get("pidns") != here.pidns:
        return False
    pid, started = recorded.get("pid"), recorded.get("started")
    if not isinstance(pid, int) or not isinstance(started, str):
        return False
    try:
        os.kill(pid, 0)  # signal 0: only whether the pid exists
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # another user's process: its start time may be hidden; assume it
    now = _start_time(pid, proc)
    return now is not None and now != started  # the pid reused (our own pid, say)


THIS_PROCESS = current()

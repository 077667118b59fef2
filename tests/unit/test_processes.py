"""Whether a lease's recorded process is certainly gone: only ever said when it is."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamer.runtime.processes import THIS_PROCESS, current, gone

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_this_process_is_recorded_with_its_machine_namespace_pid_and_start() -> None:
    here = current()
    assert len(here.nonce) == 12 and here.nonce != THIS_PROCESS.nonce  # drawn per call
    assert here.pid == os.getpid() and here.boot and here.pidns and here.started
    assert dataclasses.replace(here, nonce=THIS_PROCESS.nonce) == THIS_PROCESS


def test_a_live_process_is_not_gone() -> None:
    assert not gone(THIS_PROCESS.document(), THIS_PROCESS)


def test_an_exited_process_of_this_machine_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = dataclasses.replace(current(), pid=child.pid)
        record = dataclasses.replace(record, started=_started(child.pid))
        assert not gone(record.document(), THIS_PROCESS)
    finally:
        child.kill()
        child.wait()
    assert gone(record.document(), THIS_PROCESS)


def test_a_reused_pid_is_gone() -> None:
    """Our own pid with another start time: a container's pid 1 after a restart, say."""
    record = {**THIS_PROCESS.document(), "started": "1"}
    assert gone(record, THIS_PROCESS)


@pytest.mark.parametrize(
    "change",
    [
        {"boot": "another-machine-or-boot"},
        {"pidns": "pid:[1]"},  # another container: its pids mean nothing here
        {"pid": None},
        {"started": None},
    ],
)
def test_a_process_elsewhere_or_unrecorded_cannot_be_told_gone(change: dict[str, Any]) -> None:
    record = {**THIS_PROCESS.document(), "pid": 2**22 + 1, **change}  # no such pid here
    assert not gone(record, THIS_PROCESS)
    assert not gone(None, THIS_PROCESS) and not gone({}, THIS_PROCESS)


def test_without_proc_nothing_is_ever_gone(tmp_path: Path) -> None:
    here = current(proc=tmp_path)
    assert here.boot is None and here.pidns is None and here.started is None
    assert not gone({**here.document(), "pid": 2**22 + 1, "started": "1"}, here)


def _started(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[-1].split()[19]

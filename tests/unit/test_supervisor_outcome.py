"""The exit of a service whose streams failed: one error line says why."""

from __future__ import annotations

import asyncio

import pytest
from structlog.testing import capture_logs

from streamer.core.errors import FatalDatabaseError
from streamer.runtime.supervisor import Service


async def _failed_group(*failures: Exception) -> asyncio.Task[None]:
    async def run() -> None:
        raise ExceptionGroup("streams", list(failures))

    task = asyncio.create_task(run())
    await asyncio.wait({task})
    return task


def _refused(stream: str) -> FatalDatabaseError:
    return FatalDatabaseError(f"not authorized ... {stream}", code=13)


async def test_streams_refused_together_are_one_error_line_and_warnings() -> None:
    """A privilege both streams need fails both at once; the operator reads one error."""
    task = await _failed_group(_refused("orders"), _refused("inventory"))
    with capture_logs() as logs:
        assert Service._outcome(task) == 1
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("service.watcher_failed", "error"),
        ("service.watcher_also_failed", "warning"),
    ]
    assert "orders" in logs[0]["error"] and "inventory" in logs[1]["error"]


@pytest.mark.parametrize("first", [True, False], ids=["bug-first", "bug-second"])
async def test_a_bug_is_always_an_error_with_its_traceback(first: bool) -> None:
    """Not a StreamerError: never demoted to a warning, and its traceback is kept."""
    bug = RuntimeError("a bug")
    failures = [bug, _refused("orders")] if first else [_refused("orders"), bug]
    task = await _failed_group(*failures)
    with capture_logs() as logs:
        assert Service._outcome(task) == 1
    [bug_line] = [e for e in logs if "RuntimeError" in e["error"]]
    assert bug_line["log_level"] == "error" and bug_line["exc_info"] is True

"""Command monitoring: every command's duration and outcome; slow ones logged."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from streamer.core.errors import CommandError
from streamer.mongo import Mongo
from streamer.settings import Settings


async def test_commands_slower_than_the_threshold_are_logged_without_their_bodies(
    settings: Settings,
) -> None:
    """With a 0 ms threshold every command is slow: each is one structured event."""
    slow = settings.model_copy(update={"slow_command_ms": 0})
    with capture_logs() as logs:
        async with Mongo(slow.mongo_options()) as mongo:
            await mongo.find("orders", {"secret": "do-not-log"})
    events = [e for e in logs if e["event"] == "mongo.slow_command"]
    assert {e["command"] for e in events} >= {"ping", "find"}
    assert all("duration_ms" in e for e in events)
    assert "do-not-log" not in repr(logs)


async def test_failed_commands_are_counted_and_logged_with_their_code(
    settings: Settings,
) -> None:
    """A failing command increments the failure count and logs its code and name."""
    observed: list[tuple[str, bool]] = []
    with capture_logs() as logs:
        options = settings.mongo_options()
        async with Mongo(options, observers=[lambda n, s, ok: observed.append((n, ok))]) as m:
            with pytest.raises(CommandError):
                await m.command({"noSuchCommand": 1})
            assert m.listener.stats.failures == 1
    assert ("noSuchCommand", False) in observed
    [failed] = [e for e in logs if e["event"] == "mongo.command_failed"]
    assert failed["command"] == "noSuchCommand" and failed["code"] == 59
    assert not [e for e in logs if e["event"] == "mongo.slow_command"]  # 100 ms default

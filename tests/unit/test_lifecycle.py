"""The lifecycle helpers (streamer.runtime.lifecycle) and the lease renewal loop they serve.

Every test decides by events and counts: a zero-second sleep stands for "the time
passed", and nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
import structlog
from structlog.testing import capture_logs

from streamer.core.errors import FatalDatabaseError, TransientError
from streamer.runtime.leases import Lease, renew_until_lost
from streamer.runtime.lifecycle import any_done, first_of, sleep_unless_stopped


async def test_a_sleep_ends_false_when_its_time_passes() -> None:
    assert await sleep_unless_stopped(asyncio.Event(), 0) is False


async def test_a_sleep_ends_true_at_once_when_stopping_is_already_set() -> None:
    stopping = asyncio.Event()
    stopping.set()
    # An hour: only the event can end it before the test's own timeout.
    assert await sleep_unless_stopped(stopping, 3600) is True


async def test_a_sleep_ends_true_when_stopping_is_set_meanwhile() -> None:
    stopping = asyncio.Event()
    sleeper = asyncio.create_task(sleep_unless_stopped(stopping, 3600))
    await asyncio.sleep(0)  # the sleeper now waits
    stopping.set()
    assert await sleeper is True


def blocker(started: asyncio.Event, cleaned: list[str], name: str) -> Awaitable[None]:
    """Waits forever; on its cancellation, cleans up across an await, then records it."""

    async def run() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # recorded only if first_of awaits it to the end
            cleaned.append(name)

    return run()


async def answer(value: int) -> int:
    await asyncio.sleep(0)
    return value


async def test_the_winner_returns_its_result_and_the_loser_is_cancelled_and_awaited() -> None:
    cleaned: list[str] = []
    won, lost = await first_of(answer(42), blocker(asyncio.Event(), cleaned, "loser"))
    assert won.result() == 42
    assert lost.cancelled()
    assert cleaned == ["loser"]


async def test_an_error_in_the_winner_propagates_after_the_loser_is_awaited() -> None:
    cleaned: list[str] = []

    async def fail() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await first_of(blocker(asyncio.Event(), cleaned, "loser"), fail())
    assert cleaned == ["loser"]


async def test_errors_in_both_propagate_together() -> None:
    async def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ExceptionGroup) as caught:
        await first_of(fail("a"), fail("b"))
    assert sorted(str(e) for e in caught.value.exceptions) == ["a", "b"]


async def test_a_cancelled_caller_cancels_and_awaits_both_then_propagates() -> None:
    cleaned: list[str] = []
    a_started, b_started = asyncio.Event(), asyncio.Event()
    caller = asyncio.create_task(
        first_of(blocker(a_started, cleaned, "a"), blocker(b_started, cleaned, "b"))
    )
    await a_started.wait()
    await b_started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(cleaned) == ["a", "b"]


async def test_a_task_waited_on_through_any_done_is_left_running_when_it_loses() -> None:
    stopping = asyncio.Event()
    stopping.set()
    service = asyncio.create_task(asyncio.Event().wait())
    try:
        _, stopped = await first_of(any_done(service), stopping.wait())
        assert stopped.result() is True
        assert not service.done()
    finally:
        service.cancel()
        await asyncio.wait({service})


async def test_any_done_returns_when_the_first_of_several_tasks_is_done() -> None:
    quick = asyncio.create_task(answer(1))
    slow = asyncio.create_task(asyncio.Event().wait())
    await any_done(quick, slow)
    assert quick.done() and not slow.done()
    slow.cancel()
    await asyncio.wait({slow})


# -- the lease renewal loop (streamer.runtime.leases.renew_until_lost) ---------------------------


class FakeLeases:
    """Answers renewals from a script: a Lease, None (lost) or an error to raise."""

    def __init__(self, script: list[Lease | Exception | None]) -> None:
        self.script = script
        self.renewals = 0

    async def renew(self, stream: str) -> Lease | None:
        step = self.script[self.renewals]
        self.renewals += 1
        if isinstance(step, Exception):
            raise step
        return step


LEASE = Lease(
    stream="orders",
    owner="pod-0",
    previous_owner=None,
    expires_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    handover="kept",
    previous_nonce=None,
)


async def no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def renewal(leases: FakeLeases) -> Callable[[], Awaitable[None]]:
    # A TTL of an hour: a transient failure is always well inside it.
    log = structlog.get_logger("test").bind(stream="orders")
    return lambda: renew_until_lost(leases, "orders", 3600, log, sleep=no_wait)


async def test_renewal_stops_at_once_when_the_database_refuses_it() -> None:
    refused = FatalDatabaseError("not authorized on shop to execute command update")
    leases = FakeLeases([LEASE, refused, LEASE])
    with pytest.raises(FatalDatabaseError, match="not authorized"):
        await renewal(leases)()
    assert leases.renewals == 2  # nothing after the refusal


async def test_renewal_rides_out_a_transient_error_and_logs_its_message() -> None:
    leases = FakeLeases([TransientError("connection reset by peer"), LEASE, None])
    with capture_logs() as logs:
        await renewal(leases)()
    assert leases.renewals == 3
    failed = [e for e in logs if e["event"] == "lease.renew_failed"]
    assert [e["error"] for e in failed] == ["TransientError: connection reset by peer"]
    assert logs[-1]["event"] == "lease.lost"


async def test_renewal_does_not_swallow_a_bug() -> None:
    leases = FakeLeases([KeyError("expires_at")])
    with pytest.raises(KeyError):
        await renewal(leases)()

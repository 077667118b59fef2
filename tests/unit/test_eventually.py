"""``eventually`` (tests/support/polling.py): the one poll with a deadline the tests use.

Checks count their calls, so each test decides by calls made, not by the clock; the
deadlines are 0 s (fail after the first call) or far beyond what is awaited.
"""

from __future__ import annotations

import pytest

from tests.support.polling import eventually


async def test_returns_the_first_truthy_value_of_a_sync_check() -> None:
    calls: list[int] = []

    def check() -> int:
        calls.append(1)
        return len(calls) if len(calls) >= 3 else 0

    assert await eventually(check, what="three calls", interval_s=0) == 3
    assert len(calls) == 3


async def test_awaits_an_async_check_and_returns_its_value() -> None:
    calls: list[int] = []

    async def check() -> dict[str, int] | None:
        calls.append(1)
        return {"calls": len(calls)} if len(calls) == 2 else None

    assert await eventually(check, what="two calls", interval_s=0) == {"calls": 2}


async def test_a_check_true_at_once_is_called_once() -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        return True

    assert await eventually(check, what="at once", within_s=0) is True
    assert calls == [1]


async def test_past_the_deadline_fails_naming_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError) as failure:
        await eventually(lambda: [], what="an owner for orders", within_s=0)
    assert str(failure.value) == "not within 0s: an owner for orders; last: []"


async def test_a_false_check_shows_no_last_value_but_the_detail() -> None:
    async def owners() -> dict[str, str]:
        return {"orders": "a"}

    with pytest.raises(AssertionError) as failure:
        await eventually(lambda: False, what="b owns orders", within_s=0, detail=owners)
    assert str(failure.value) == "not within 0s: b owns orders; {'orders': 'a'}"


async def test_the_detail_is_computed_only_on_failure() -> None:
    asked: list[int] = []

    def detail() -> str:
        asked.append(1)
        return "state"

    await eventually(lambda: True, what="at once", detail=detail)
    assert asked == []


async def test_an_error_in_the_check_fails_at_once_without_retrying() -> None:
    calls: list[int] = []

    def check() -> bool:
        calls.append(1)
        raise AssertionError("the process exited")

    with pytest.raises(AssertionError, match="the process exited"):
        await eventually(check, what="never", within_s=3600)
    assert calls == [1]

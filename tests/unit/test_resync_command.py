"""What ``streamer resync`` prints: progress with a total, where it resumes or stopped."""

from __future__ import annotations

import dataclasses
import datetime as dt

from streamer.commands.resync import (
    Throttle,
    interrupted_line,
    progress_kind,
    progress_line,
    resuming_line,
)
from streamer.core.checkpoint import Resync

STARTED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
HALFWAY = Resync(gen=1, reason="r", fresh=False, started_at=STARTED, scanned=21_500, total=45_000)


def test_progress_reads_as_a_count_of_a_total() -> None:
    """Scanning, then sweeping, then (fresh) clearing each have their line."""
    assert progress_line("orders", HALFWAY) == "orders: scanned 21,500 of 45,000"
    sweeping = dataclasses.replace(HALFWAY, step="sweep", removed=3)
    assert progress_line("orders", sweeping) == "orders: scanned 21,500 of 45,000; removed 3"


def test_resuming_and_stopping_say_where() -> None:
    """The lines an operator sees when a resync resumes or is interrupted."""
    assert resuming_line("orders", HALFWAY) == (
        "orders: resuming the interrupted resync at 21,500 of 45,000"
    )
    assert interrupted_line("orders", HALFWAY) == (
        "orders: resync interrupted at 21,500 of 45,000; "
        "run streamer resync again (or start the service) to resume"
    )


def test_progress_is_printed_when_it_changed_at_most_once_per_interval() -> None:
    """A repeated line is dropped, and so is a new one within the interval."""
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle("a")
    assert not throttle("b")
    now[0] = 1.5
    assert throttle("b")
    now[0] = 3.0
    assert not throttle("b")


def test_a_new_step_is_printed_at_once_however_soon_after_the_last_line() -> None:
    """Counting, then scanning: the first scanned line is not held back by the interval."""
    now = [0.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle("orders: counting the documents to scan", "counting")
    assert throttle("orders: scanned 0 of 1,500", "scan")
    assert not throttle("orders: scanned 25 of 1,500", "scan")


def test_a_scan_whose_total_is_not_known_yet_says_it_is_counting() -> None:
    counting = Resync(gen=1, reason="r", fresh=False, started_at=HALFWAY.started_at, step="scan")
    assert progress_line("orders", counting) == "orders: counting the documents to scan"
    assert progress_kind(counting) == "counting"
    assert progress_kind(HALFWAY) == "scan"

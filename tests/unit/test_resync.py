"""Pure parts of the resync: the next timestamp, progress, resume decisions."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

import pytest
from bson import Timestamp
from structlog.testing import capture_logs

from streamer.core.checkpoint import Resync, Segment
from streamer.core.resync_plan import (
    FIRST_START,
    FORCED,
    after,
    counted,
    covered_stage,
    is_resumed,
    next_segments,
    resync_level,
    scan_filter,
)
from streamer.runtime.resync import Progress


def test_streaming_resumes_just_after_the_snapshot_time() -> None:
    """startAtOperationTime is inclusive, so the resync starts one tick later."""
    assert after(Timestamp(10, 5)) == Timestamp(10, 6)
    assert after(Timestamp(10, 0xFFFFFFFF)) == Timestamp(11, 0)


def test_a_long_resync_reports_its_progress_at_most_every_interval() -> None:
    """Progress logs once the interval has passed, not on every batch."""
    progress = Progress("orders", "scanned", every_s=0.0)
    quiet = Progress("orders", "scanned", every_s=3600)
    with capture_logs() as logs:
        progress.tick(500)
        quiet.tick(500)
    [line] = logs
    assert line["event"] == "resync.progress" and line["scanned"] == 500


def test_progress_lines_carry_the_total() -> None:
    """The log line names the total when it is known, formatted for people too."""
    progress = Progress("orders", "scanned", every_s=0.0)
    with capture_logs() as logs:
        progress.tick(21_500, 45_000)
    [line] = logs
    assert line["total"] == 45_000 and line["progress"] == "21,500 of 45,000"


@pytest.mark.parametrize(
    ("done", "total", "text"),
    [
        (21_500, 45_000, "21,500 of 45,000"),
        (0, 0, "0 of 0"),
        (12, None, "12"),
        (1_001, 1_000, "1,001 of 1,001"),  # the total is an estimate under writes
    ],
)
def test_counts_read_with_thousands_separators_and_a_total(
    done: int, total: int | None, text: str
) -> None:
    """``counted`` is what every progress line and message shows."""
    assert counted(done, total) == text


T1, T2 = Timestamp(100, 1), Timestamp(200, 1)
STARTED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def state(**changes: Any) -> Resync:
    return Resync(gen=2, reason="r", fresh=False, started_at=STARTED, **changes)


@pytest.mark.parametrize(
    ("resync", "at", "segments"),
    [
        (state(), T1, (Segment(T1),)),
        (state(segments=(Segment(T1),), last_id=[5]), T1, (Segment(T1),)),
        (state(segments=(Segment(T1),), last_id=[5]), T2, (Segment(T1), Segment(T2, [5]))),
        (state(segments=(Segment(T1),)), T2, (Segment(T2),)),
    ],
    ids=["first", "same snapshot", "snapshot expired", "expired before any document"],
)
def test_a_resumed_scan_keeps_its_snapshot_or_starts_a_new_segment(
    resync: Resync, at: Timestamp, segments: tuple[Segment, ...]
) -> None:
    """Reading on at the same time keeps the segments; a new time after some documents
    were applied starts a segment after the last ``_id``; before any, it starts over."""
    assert next_segments(resync, at) == segments


def test_a_resumed_scan_reads_after_the_last_id_in_bson_order() -> None:
    """``$expr`` compares across BSON types as the ``_id`` sort does; a literal keeps a
    string that starts with ``$`` from reading as a field path."""
    assert scan_filter(state()) == {}
    assert scan_filter(state(last_id=["$x"])) == {"$expr": {"$gt": ["$_id", {"$literal": "$x"}]}}


def test_streaming_skips_only_what_later_scan_segments_already_applied() -> None:
    """One segment: nothing to skip. Later segments: an event on a document after a
    segment's start at or before that segment's time is dropped."""
    assert covered_stage((Segment(T1),)) is None
    stage = covered_stage((Segment(T1), Segment(T2, [5])))
    assert stage == {
        "$match": {
            "$expr": {
                "$not": [
                    {
                        "$or": [
                            {
                                "$and": [
                                    {"$gt": ["$documentKey._id", {"$literal": 5}]},
                                    {"$lte": ["$clusterTime", T2]},
                                ]
                            }
                        ]
                    }
                ]
            }
        }
    }


def test_a_resync_with_work_behind_it_is_a_resumption() -> None:
    """A claimed resync starts; one with a scan segment or in its sweep resumes."""
    assert not is_resumed(state())
    assert not is_resumed(state(step="clear"))
    assert is_resumed(state(segments=(Segment(T1),)))
    assert is_resumed(state(step="sweep", segments=(Segment(T1),)))


def test_the_checkpoint_document_round_trips_a_resync_in_progress() -> None:
    """Segments, position and counts survive the BSON document the store writes."""
    import bson
    from bson.codec_options import CodecOptions

    from streamer.core.checkpoint import Checkpoint

    cp = Checkpoint(
        stream="orders",
        version=3,
        phase="resync",
        gen=2,
        resync=state(segments=(Segment(T1), Segment(T2, ["k"])), last_id=["m"], scanned=9),
        scan_segments=(Segment(T2, [1]),),
    )
    stored = bson.decode(bson.encode(cp.document()), CodecOptions(tz_aware=True))
    assert Checkpoint.from_document(stored) == cp


@pytest.mark.parametrize(
    ("reason", "request_id", "level"),
    [
        (FIRST_START, None, logging.INFO),  # a clean first start: nothing to look at
        (FORCED, None, logging.INFO),  # `streamer resync` without a running owner
        ("requested by `streamer resync` (vm:resync:1)", "r1", logging.INFO),
        ("the resume point is no longer in the oplog", None, logging.WARNING),
        ("orders was dropped", None, logging.WARNING),
    ],
)
def test_only_a_resync_after_lost_history_is_a_warning(
    reason: str, request_id: str | None, level: int
) -> None:
    resync = Resync(gen=1, reason=reason, fresh=True, started_at=dt.datetime.now(dt.UTC))
    assert resync_level(dataclasses.replace(resync, request=request_id)) == level

"""Pure parts of the resync: the next timestamp, progress reporting."""

from __future__ import annotations

from bson import Timestamp
from structlog.testing import capture_logs

from streamer.resync import Progress, after


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

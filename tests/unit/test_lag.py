"""A stream's lag (streamer.core.lag) and status's lease and line logic
(streamer.commands.status)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from bson import Timestamp

from streamer.commands.status import (
    PartitionStatus,
    StatusReport,
    StreamStatus,
    committed_time,
    lease_is_live,
    lines,
    partition_status,
    render,
)
from streamer.core.checkpoint import Checkpoint, Resync
from streamer.core.lag import (
    Position,
    caught_up_as_of,
    caught_up_position,
    lag_seconds,
    later,
    position_after_batch,
    recorded_position,
)

T = 1_700_000_000  # a whole second, unix time
NOW = dt.datetime.fromtimestamp(T, dt.UTC)


def wall(offset_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T + offset_s, dt.UTC)


def streaming(position: Timestamp | None, applied_at: dt.datetime | None = None) -> Checkpoint:
    return Checkpoint(
        stream="orders", version=3, phase="stream", gen=1, position=position, applied_at=applied_at
    )


RESYNCING = Checkpoint(
    stream="orders",
    version=2,
    phase="resync",
    gen=2,
    position=Timestamp(T - 50, 1),
    resync=Resync(gen=2, reason="asked", fresh=False, started_at=NOW),
)


@pytest.mark.parametrize(
    ("position", "now", "lag"),
    [
        (None, T + 5.0, None),  # unknown: no figure rather than a made-up one
        (Position(Timestamp(T, 1)), T + 2.5, 2.5),
        (Position(Timestamp(T, 7)), T + 0.0, 0.0),
        # A host clock a little behind the server's: never a negative lag.
        (Position(Timestamp(T, 1)), T - 0.4, 0.0),
        # The last event's wall time refines its cluster time's second.
        (Position(Timestamp(T, 1), wall(0.75)), T + 1.0, 0.25),
        # An older event's wall time does not pull a later (idle) position back.
        (Position(Timestamp(T, 1), wall(-9.5)), T + 1.0, 1.0),
        # A naive BSON date is UTC.
        (Position(Timestamp(T, 1), wall(0.5).replace(tzinfo=None)), T + 1.0, 0.5),
    ],
)
def test_lag_is_now_minus_the_position_never_negative(
    position: Position | None, now: float, lag: float | None
) -> None:
    """One definition for /metrics, /readyz, status and the demo."""
    got = lag_seconds(position, now)
    assert got == (pytest.approx(lag) if lag is not None else None)


@pytest.mark.parametrize(
    ("cp", "events", "observed", "expected"),
    [
        # A batch with events: what its checkpoint records (their last event), even if
        # the reply's operationTime is later (a full batch may have more behind it).
        (
            streaming(Timestamp(T, 3), wall(0.2)),
            5,
            Timestamp(T + 4, 1),
            Position(Timestamp(T, 3), wall(0.2)),
        ),
        # An empty batch: caught up to the reply's operationTime.
        (
            streaming(Timestamp(T, 3), wall(0.2)),
            0,
            Timestamp(T + 4, 1),
            Position(Timestamp(T + 4, 1), wall(0.2)),
        ),
        # An empty reply without an operationTime: what the checkpoint records.
        (streaming(Timestamp(T, 3)), 0, None, Position(Timestamp(T, 3))),
        # Resyncing: no position, so no lag.
        (RESYNCING, 0, Timestamp(T + 4, 1), None),
        (streaming(None), 0, Timestamp(T + 4, 1), None),
    ],
)
def test_the_owner_takes_its_position_by_the_checkpoint_rules(
    cp: Checkpoint, events: int, observed: Timestamp | None, expected: Position | None
) -> None:
    assert position_after_batch(cp, events, observed) == expected


def test_status_on_an_idle_stream_agrees_with_the_owner_not_with_a_stale_checkpoint() -> None:
    """The regression of issue 17: the checkpoint stored 9 s ago (idle saves are rare),
    nothing changed since. Status's caught-up position equals the owner's after its empty
    batch, so the lags agree; the recorded one alone would say 9 s."""
    stale = streaming(Timestamp(T - 9, 1), wall(-9.0))
    newest = Timestamp(T, 4)
    owner = position_after_batch(stale, 0, newest)
    status = caught_up_position(stale, newest)
    assert owner == status
    assert lag_seconds(status, T + 0.7) == pytest.approx(0.7)
    assert lag_seconds(recorded_position(stale), T + 0.7) == pytest.approx(9.7)


def test_an_empty_reply_that_knew_of_nothing_newer_is_caught_up_as_of_when_it_was_asked() -> None:
    """The last write was 9 s ago and the reply's $clusterTime is its operationTime: no
    change waited anywhere when the getMore was sent, so the lag is from then, not from
    the last write."""
    cp = streaming(Timestamp(T - 9, 1), wall(-9.0))
    seen = Timestamp(T - 9, 1)
    asked = wall(0.5)
    position = position_after_batch(cp, 0, seen, newest=seen, asked_at=asked)
    assert position == Position(seen, asked)
    assert lag_seconds(position, T + 0.6) == pytest.approx(0.1)
    # Without the reply's $clusterTime (a standalone), the operationTime rule alone.
    assert position_after_batch(cp, 0, seen, asked_at=asked) == Position(seen, wall(-9.0))


def test_a_reply_that_knew_of_a_newer_write_keeps_the_stream_behind_by_its_operation_time() -> None:
    """A write only the primary has (the secondaries lag): the change stream cannot return
    it yet, so the stream is behind since its operationTime (the commit point)."""
    cp = streaming(Timestamp(T - 2, 1), wall(-2.0))
    position = position_after_batch(
        cp, 0, Timestamp(T - 2, 1), newest=Timestamp(T, 3), asked_at=wall(0.5)
    )
    assert lag_seconds(position, T + 0.6) == pytest.approx(2.6)
    assert caught_up_as_of(cp, Timestamp(T - 2, 1), None, wall(0.5)) == Position(
        Timestamp(T - 2, 1), wall(-2.0)
    )


def test_the_owners_position_never_moves_back_while_it_streams() -> None:
    caught_up = Position(Timestamp(T - 9, 1), wall(0.5))
    behind = Position(Timestamp(T - 2, 1), wall(-2.0))
    assert later(caught_up, behind) == caught_up  # a newer write appeared after it asked
    assert later(behind, caught_up) == caught_up
    assert later(None, behind) == behind
    assert later(caught_up, None) is None  # resyncing: no position at all


def test_status_asks_the_source_up_to_its_majority_commit_point() -> None:
    """A change stream returns only majority-committed changes, so on a replica set status
    asks up to the commit point (hello's lastWrite), not the ping's newer time."""
    behind = {"lastWrite": {"majorityOpTime": {"ts": Timestamp(T - 2, 1), "t": 1}}}
    level = {"lastWrite": {"majorityOpTime": {"ts": Timestamp(T, 5), "t": 1}}}
    assert committed_time(Timestamp(T, 5), behind) == Timestamp(T - 2, 1)
    assert committed_time(Timestamp(T, 5), level) == Timestamp(T, 5)
    # A standalone has no lastWrite: the ping's own time.
    assert committed_time(Timestamp(T, 5), {"isWritablePrimary": True}) == Timestamp(T, 5)
    assert committed_time(None, behind) is None


def test_a_caught_up_position_never_goes_back_before_the_checkpoint() -> None:
    cp = streaming(Timestamp(T, 5))
    assert caught_up_position(cp, Timestamp(T - 3, 1)) == Position(Timestamp(T, 5))


def lease(owner: str = "vm", expires_at: dt.datetime | None = None) -> dict[str, Any]:
    return {"_id": "orders", "owner": owner, "expires_at": expires_at}


@pytest.mark.parametrize(
    ("doc", "live"),
    [
        (None, False),
        (lease(expires_at=NOW + dt.timedelta(seconds=10)), True),
        (lease(expires_at=NOW + dt.timedelta(milliseconds=1)), True),
        # Released: expires_at is the release's $$NOW; not live in that same millisecond.
        (lease(expires_at=NOW), False),
        (lease(expires_at=NOW - dt.timedelta(seconds=1)), False),
        (lease(expires_at=None), False),
        # Released in the future's place: a released flag ends it whatever the clock.
        ({**lease(expires_at=NOW + dt.timedelta(seconds=10)), "released": True}, False),
    ],
)
def test_a_lease_is_live_only_while_it_expires_after_the_servers_now(
    doc: dict[str, Any] | None, live: bool
) -> None:
    assert lease_is_live(doc, NOW) is live


def test_a_stream_whose_lease_ended_says_no_live_owner() -> None:
    cp = streaming(Timestamp(T, 1))
    ended = partition_status(
        cp, lease(expires_at=NOW), Position(Timestamp(T, 1)), server_now=NOW, now=T + 1.0
    )
    assert ended.owner is None and ended.last_owner == "vm"
    [line] = lines(StatusReport(streams=[StreamStatus(stream="orders", partitions=[ended])]))
    assert "no live owner (vm's lease ended 2023-11-14T22:13:20.000+00:00)" in line
    assert "owner=vm" not in line
    live = partition_status(
        cp,
        lease(expires_at=NOW + dt.timedelta(seconds=15)),
        Position(Timestamp(T, 1)),
        server_now=NOW,
        now=T + 1.0,
    )
    [line] = lines(StatusReport(streams=[StreamStatus(stream="orders", partitions=[live])]))
    assert line == (
        "orders: phase=stream position=2023-11-14T22:13:20.000+00:00 lag_s=1.0 owner=vm "
        "lease_expires_at=2023-11-14T22:13:35.000+00:00 gen=1"
    )


def test_status_json_is_one_document_of_streams_and_partitions_with_iso_times() -> None:
    p = partition_status(
        RESYNCING,
        lease(expires_at=NOW + dt.timedelta(seconds=15)),
        None,
        server_now=NOW,
        now=T + 1.0,
    )
    none = PartitionStatus(
        partition=0,
        owner=None,
        lease_expires_at=None,
        position=None,
        lag_s=None,
        phase=None,
    )
    report = StatusReport(
        streams=[
            StreamStatus(stream="orders", partitions=[p]),
            StreamStatus(stream="inventory", partitions=[none]),
        ]
    )
    [text] = render(report, as_json=True)
    doc = json.loads(text)
    orders = doc["streams"][0]["partitions"][0]
    assert orders["owner"] == "vm"
    assert dt.datetime.fromisoformat(orders["lease_expires_at"]) == NOW + dt.timedelta(seconds=15)
    assert orders["phase"] == "resync" and orders["lag_s"] is None
    assert orders["resync_reason"] == "asked"
    assert doc["streams"][1]["partitions"][0]["phase"] is None
    assert lines(report)[1] == (
        "inventory: no checkpoint (the service has not started this stream) no live owner"
    )

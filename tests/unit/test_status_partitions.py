"""``streamer status`` of a stream split into partitions: a line and an entry each."""

from __future__ import annotations

import datetime as dt
import json

from bson import Timestamp

from streamer.commands.status import (
    PartitionStatus,
    StatusReport,
    StreamStatus,
    lines,
    partition_status,
    render,
)
from streamer.core.checkpoint import Checkpoint
from streamer.core.lag import Position

T = 1_700_000_000  # a whole second, unix time
NOW = dt.datetime.fromtimestamp(T, dt.UTC)
LEASE_END = NOW + dt.timedelta(seconds=15)


def partition(index: int, owner: str | None, behind_s: int) -> PartitionStatus:
    """Partition ``index`` of orders, ``behind_s`` seconds behind, leased by ``owner``."""
    key = f"orders#{index}/4"
    cp = Checkpoint(stream=key, version=3, phase="stream", gen=1, position=Timestamp(T, 1))
    lease = {"_id": key, "owner": owner, "expires_at": LEASE_END} if owner else None
    return partition_status(
        cp,
        lease,
        Position(Timestamp(T - behind_s, 1)),
        server_now=NOW,
        now=float(T),
        partition=index,
    )


SPLIT = StatusReport(
    streams=[
        StreamStatus(
            stream="orders",
            partitions=[
                partition(0, "a", 0),
                partition(1, "b", 2),
                partition(2, "a", 0),
                partition(3, None, 30),
            ],
        )
    ]
)


def test_a_split_stream_gets_a_line_per_partition_named_by_its_key() -> None:
    assert lines(SPLIT) == [
        "orders#0/4: phase=stream position=2023-11-14T22:13:20.000+00:00 lag_s=0.0 owner=a "
        "lease_expires_at=2023-11-14T22:13:35.000+00:00 gen=1",
        "orders#1/4: phase=stream position=2023-11-14T22:13:18.000+00:00 lag_s=2.0 owner=b "
        "lease_expires_at=2023-11-14T22:13:35.000+00:00 gen=1",
        "orders#2/4: phase=stream position=2023-11-14T22:13:20.000+00:00 lag_s=0.0 owner=a "
        "lease_expires_at=2023-11-14T22:13:35.000+00:00 gen=1",
        "orders#3/4: phase=stream position=2023-11-14T22:12:50.000+00:00 lag_s=30.0 "
        "no live owner gen=1",
    ]


def test_a_split_streams_json_lists_each_partition_with_its_owner_position_lag_and_phase() -> None:
    [text] = render(SPLIT, as_json=True)
    [stream] = json.loads(text)["streams"]
    assert stream["stream"] == "orders"
    got = [
        (p["partition"], p["owner"], p["lag_s"], p["phase"], p["lease_expires_at"] is not None)
        for p in stream["partitions"]
    ]
    assert got == [
        (0, "a", 0.0, "stream", True),
        (1, "b", 2.0, "stream", True),
        (2, "a", 0.0, "stream", True),
        (3, None, 30.0, "stream", False),
    ]
    for p in stream["partitions"]:
        assert dt.datetime.fromisoformat(p["position"]).tzinfo is not None


def test_an_unsplit_stream_keeps_its_line_named_by_the_stream_alone() -> None:
    one = StatusReport(
        streams=[StreamStatus(stream="inventory", partitions=[partition(0, "a", 1)])]
    )
    [line] = lines(one)
    assert line.startswith("inventory: phase=stream ")

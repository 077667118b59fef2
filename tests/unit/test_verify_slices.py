"""Which reads cover a split stream's partitions, each at its own time."""

from __future__ import annotations

from bson import Timestamp

from streamer.core.partitions import Partition, partitions_of
from streamer.runtime.verify import slices

T1, T2 = Timestamp(100, 1), Timestamp(100, 7)


def test_partitions_at_one_time_are_read_whole_in_one_read() -> None:
    times = dict.fromkeys(partitions_of("orders", 4), T1)
    assert slices(times) == [(T1, {})]


def test_an_unsplit_stream_is_one_unfiltered_read() -> None:
    assert slices({Partition("orders"): T2}) == [(T2, {})]


def test_partitions_at_different_times_are_each_read_through_their_own_filter() -> None:
    units = partitions_of("orders", 3)
    times = {units[2]: T1, units[0]: T2, units[1]: T1}
    assert slices(times) == [
        (T2, units[0].source_filter()),
        (T1, units[1].source_filter()),
        (T1, units[2].source_filter()),
    ]

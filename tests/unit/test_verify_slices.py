"""Which reads cover a split stream's partitions, each at its own time."""

from __future__ import annotations

from bson import Timestamp

from streamer.core.partitions import Partition, partitions_of
from streamer.runtime.verify import VerifyReport, slices

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


def test_the_json_report_names_each_partitions_read_time_only_for_a_split_stream() -> None:
    report = VerifyReport()
    report.totals.source_at = T1
    report.totals.partition_at = {0: T2, 1: T1}
    report.alerts.source_at = T2
    doc = report.document()
    assert doc["collections"]["user_totals"]["partitions_source_at"] == {
        "0": {"t": 100, "i": 7},
        "1": {"t": 100, "i": 1},
    }
    assert list(doc["collections"]["stock_alerts"]) == [
        "stream",
        "checked",
        "drifted",
        "source_at",
        "examples",
    ]

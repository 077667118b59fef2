"""Readiness's database check: what /readyz says while the database does not answer."""

from __future__ import annotations

import re
import time

from prometheus_client import CollectorRegistry

from streamer.mongo import Mongo
from streamer.runtime.health import Health
from streamer.runtime.metrics import Metrics
from streamer.settings import Settings


def health() -> Health:
    """A Health over a client that is never opened: only its bookkeeping is used."""
    return Health(
        Mongo(Settings().mongo_options()),
        {},
        Metrics(CollectorRegistry()),
        ready_max_lag_s=60,
        max_alert_series=10,
        ping_interval_s=5,
    )


def test_before_the_first_attempt_ends_the_database_is_connecting() -> None:
    h = health()
    assert h.readiness().checks["database"] == "connecting"
    assert not h.readiness().ready


def test_an_outage_says_since_when_and_why_and_keeps_its_start() -> None:
    """Each failure brings the latest reason; the duration counts from the first."""
    h = health()
    h.database_failed(time.monotonic() - 42, "cannot reach MongoDB at mongodb://h/")
    h.database_failed(time.monotonic(), "TLS certificate check failed for mongodb://h/")
    check = h.readiness().checks["database"]
    assert re.fullmatch(r"unreachable for 4\ds: TLS certificate check failed for \S+", check)
    h.database_answered()
    assert h.readiness().checks["database"] == "ok"
    assert h.database_problem is None


def test_a_stale_ping_without_a_failure_yet_is_a_ping_waiting_for_an_answer() -> None:
    h = health()
    h.database_answered()
    h.last_ping_ok = time.monotonic() - 20  # over 3 ping intervals ago
    check = h.readiness().checks["database"]
    assert re.fullmatch(r"unreachable for 2\ds: a ping is waiting for an answer", check)

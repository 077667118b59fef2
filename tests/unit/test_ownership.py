"""How an owner explains itself: standby reasons, takeover lines and poll intervals."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from streamer.runtime.leases import Handover, Held, Lease, is_live
from streamer.runtime.ownership import acquired_line, poll_every_s, standby_reason

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
MS = dt.timedelta(milliseconds=1)


def lease(handover: Handover, previous_owner: str | None = None) -> Lease:
    return Lease("orders", "pod-1", previous_owner, NOW, handover, previous_nonce="abc")


@pytest.mark.parametrize(
    ("handover", "previous", "level", "event"),
    [
        ("new", None, logging.INFO, "lease.acquired"),
        ("kept", None, logging.INFO, "lease.acquired"),
        ("released", "pod-0", logging.INFO, "lease.acquired"),  # a clean handover
        ("expired", "pod-0", logging.WARNING, "lease.taken_over"),
        ("gone", None, logging.WARNING, "lease.taken_over"),
        ("unrenewed", None, logging.WARNING, "lease.taken_over"),
    ],
)
def test_only_a_takeover_from_a_silent_holder_is_a_warning(
    handover: Handover, previous: str | None, level: int, event: str
) -> None:
    """Routine acquisitions are info; a holder that died is worth an operator's look."""
    got_level, got_event, fields = acquired_line(lease(handover, previous), ttl_s=15)
    assert (got_level, got_event) == (level, event)
    if level == logging.WARNING:
        assert "died" in fields["reason"]
    if handover == "unrenewed":
        assert "7.5s" in fields["reason"] and fields["previous_nonce"] == "abc"


def test_a_standby_of_the_same_id_says_why_and_how_to_fix_it() -> None:
    """The one line names the other process and the setting that tells them apart."""
    reason = standby_reason(Held("orders", "vm", "abc123", same_id=True))
    assert reason.startswith("held by this instance id under another process (nonce abc123)")
    assert "STREAMER_INSTANCE_ID" in reason
    assert standby_reason(Held("orders", "pod-0", "x", same_id=False)) == "held by instance pod-0"


@pytest.mark.parametrize(
    ("held", "seconds"),
    [
        (Held("orders", "pod-0", "x", same_id=False), 5.0),  # the renewal interval
        (None, 5.0),  # the database was away
        (Held("orders", "pod-1", "x", same_id=True), 2.5),  # taken once unrenewed: poll more
    ],
)
def test_a_standby_of_the_same_id_polls_twice_as_often(held: Held | None, seconds: float) -> None:
    assert poll_every_s(held, ttl_s=15) == seconds


@pytest.mark.parametrize(
    ("doc", "live"),
    [
        ({"owner": "a", "expires_at": NOW + MS}, True),
        ({"owner": "a", "expires_at": NOW}, False),  # expiring this millisecond: gone
        ({"owner": "a", "expires_at": NOW - MS}, False),
        ({"owner": "a", "expires_at": NOW + MS, "released": True}, False),
        ({"owner": "a", "expires_at": NOW + MS, "released": False}, True),
        ({"owner": "a", "expires_at": (NOW + MS).replace(tzinfo=None)}, True),  # naive: UTC
        ({"_id": "orders"}, False),
        (None, False),
    ],
)
def test_a_lease_is_live_until_it_expires_or_is_released(
    doc: dict[str, Any] | None, live: bool
) -> None:
    assert is_live(doc, NOW) is live

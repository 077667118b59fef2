"""What a stream's owner reads as asked of it between batches (``Requests``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from streamer.core.checkpoint import Hold, Requests, ResyncRequest

RESYNC = ResyncRequest(
    id="r1", reason="asked", fresh=False, requested_at=dt.datetime(2026, 1, 1), by="cli"
)
HOLD = Hold(id="h1", by="verify", max_s=10.0)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (None, Requests()),
        ({"_id": "orders"}, Requests()),
        ({"_id": "orders", "resync_requested": RESYNC.document()}, Requests(resync=RESYNC)),
        ({"_id": "orders", "hold_requested": HOLD.document()}, Requests(hold=HOLD)),
        # Granted already (by this owner, or by one before a takeover): not asked again.
        ({"_id": "orders", "hold_requested": HOLD.document(), "hold_granted": "h1"}, Requests()),
        # A grant left from an earlier hold does not answer a newer one.
        (
            {"_id": "orders", "hold_requested": HOLD.document(), "hold_granted": "h0"},
            Requests(hold=HOLD),
        ),
        (
            {
                "_id": "orders",
                "resync_requested": RESYNC.document(),
                "hold_requested": HOLD.document(),
            },
            Requests(resync=RESYNC, hold=HOLD),
        ),
    ],
)
def test_an_owner_sees_each_request_once_and_a_granted_hold_no_more(
    doc: dict[str, Any] | None, expected: Requests
) -> None:
    assert Requests.from_document(doc) == expected

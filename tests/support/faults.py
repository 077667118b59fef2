"""The fault-injection suite's scoring: each scenario records (events, faults injected,
lost, duplicated) and the session ends with one line summing them (tests/faults/conftest.py).

A bounded run is part of `make test`; `make faults` sets FAULTS_FULL=1 for the full sizes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.runtime.verify import verify

from .model import Traffic, expected_totals

FULL = os.environ.get("FAULTS_FULL") == "1"


def size(bounded: int, full: int) -> int:
    return full if FULL else bounded


@dataclass
class Outcome:
    scenario: str
    events: int
    faults: int
    lost: int = 0
    duplicated: int = 0
    diverged: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.scenario}: {self.events} events, {self.faults} faults injected, "
            f"lost {self.lost}, duplicated {self.duplicated}"
        )


RESULTS: list[Outcome] = []


async def score(
    scenario: str, db: AsyncIOMotorDatabase[Any], store: Mongo, traffic: Traffic, faults: int
) -> Outcome:
    """Compare the derived data with the sources (and the traffic model where it is exact)."""
    outcome = Outcome(scenario, traffic.events, faults)
    orders = await db.orders.find().to_list(None)
    expected = {user: t["by_status"] for user, t in expected_totals(orders).items()}
    stored = {d["_id"]: d.get("by_status", {}) async for d in db.user_totals.find()}
    for user in expected.keys() | stored.keys():
        want, got = expected.get(user, {}), stored.get(user, {})
        for status in want.keys() | got.keys():
            gap = want.get(status, 0) - got.get(status, 0)
            outcome.lost += max(gap, 0)
            outcome.duplicated += max(-gap, 0)
    if not traffic.uncertain:
        for pid, p in traffic.products.items():
            alerts = await db.stock_alerts.find({"product_id": pid}).to_list(None)
            resolved = sum(a["state"] == "resolved" for a in alerts)
            for want, got in ((p.opens, len(alerts)), (p.resolves, resolved)):
                outcome.lost += max(want - got, 0)
                outcome.duplicated += max(got - want, 0)
    report = await verify(store, default_threshold=10)
    outcome.diverged = report.differences
    RESULTS.append(outcome)
    print("\n" + outcome.line())
    for difference in outcome.diverged[:20]:
        print(f"  diverged: {difference}")
    return outcome


def check(outcome: Outcome) -> None:
    assert (outcome.lost, outcome.duplicated) == (0, 0), outcome.line()
    assert not outcome.diverged, outcome.diverged[:20]

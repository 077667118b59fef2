"""``streamer verify``: recompute the derived data from the sources and list every difference.

Totals are recomputed from ``orders`` with the same validity rules the service uses;
the products that should have an open alert from ``inventory``. Compare at rest, or
expect differences that the service is still catching up on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .alerts import INVENTORY_FIELDS, Product, assess_product
from .inventory import STOCK_ALERTS
from .keys import bson_key
from .mongo import Mongo
from .mongo.types import Decimal128
from .orders import USER_TOTALS
from .totals import (
    DECIMAL128,
    ORDER_FIELDS,
    Contribution,
    Totals,
    assess_order,
    recompute_totals,
)


@dataclass
class VerifyReport:
    users_checked: int = 0
    products_checked: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def drift(self) -> bool:
        return bool(self.differences)

    def lines(self) -> list[str]:
        head = (
            f"verify: {self.users_checked} users, {self.products_checked} products checked, "
            f"{len(self.differences)} differences"
        )
        return [head, *self.differences]


def _decimal(value: Any) -> Any:
    return value.to_decimal() if isinstance(value, Decimal128) else value


def _same_time(a: Any, b: Any) -> bool:
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        # BSON dates keep milliseconds.
        return abs((a.replace(tzinfo=dt.UTC) - b.replace(tzinfo=dt.UTC)).total_seconds()) < 0.001
    return bool(a == b)


def compare_totals(expected: Totals, stored: Mapping[str, Any]) -> list[str]:
    """Differences between the recomputed and the stored totals of one user."""
    out = []
    if _decimal(stored.get("total")) != expected.total or not isinstance(
        stored.get("total"), Decimal128
    ):
        out.append(f"total {stored.get('total')!r}, expected {expected.total}")
    if stored.get("count") != expected.count:
        out.append(f"count {stored.get('count')!r}, expected {expected.count}")
    avg = _decimal(stored.get("avg"))
    if expected.count:
        want = DECIMAL128.divide(expected.total, Decimal(expected.count))
        if avg is None or abs(avg - want) > abs(want) * Decimal("1e-30"):
            out.append(f"avg {stored.get('avg')!r}, expected {want}")
    elif avg is not None:
        out.append(f"avg {avg!r}, expected null")
    if dict(stored.get("by_status") or {}) != expected.by_status:
        out.append(f"by_status {stored.get('by_status')!r}, expected {expected.by_status}")
    if not _same_time(stored.get("last_order_at"), expected.last_order_at):
        out.append(
            f"last_order_at {stored.get('last_order_at')}, expected {expected.last_order_at}"
        )
    return out


async def verify_totals(mongo: Mongo, report: VerifyReport) -> None:
    orders = await mongo.find("orders", {}, projection=dict.fromkeys(ORDER_FIELDS, 1))
    contributions = [c for c in map(assess_order, orders) if isinstance(c, Contribution)]
    expected = recompute_totals(contributions)
    stored = {bson_key(d["_id"]): d for d in await mongo.find(USER_TOTALS, {})}
    report.users_checked = len(expected.keys() | stored.keys())
    for key, totals in expected.items():
        doc = stored.get(key)
        if doc is None:
            report.differences.append(f"user_totals {totals.user_id!r}: missing")
            continue
        for problem in compare_totals(totals, doc):
            report.differences.append(f"user_totals {totals.user_id!r}: {problem}")
    for key, doc in stored.items():
        if key not in expected:
            report.differences.append(f"user_totals {doc['_id']!r}: user has no valid orders")


async def verify_alerts(
    mongo: Mongo, report: VerifyReport, *, default_threshold: int, hysteresis: int
) -> None:
    products = await mongo.find("inventory", {}, projection=dict.fromkeys(INVENTORY_FIELDS, 1))
    report.products_checked = len(products)
    must: dict[Hashable, Any] = {}
    may: set[Hashable] = set()  # inside the hysteresis band: either state is right
    for doc in products:
        p = assess_product(doc, default_threshold)
        if not isinstance(p, Product):
            may.add(bson_key(doc["_id"]))  # invalid: its alert stays as it was
        elif p.low:
            must[bson_key(doc["_id"])] = doc["_id"]
        elif p.stock <= p.threshold + hysteresis:
            may.add(bson_key(doc["_id"]))
    open_alerts: dict[Hashable, list[dict[str, Any]]] = {}
    for alert in await mongo.find(STOCK_ALERTS, {"state": "open"}):
        open_alerts.setdefault(bson_key(alert["product_id"]), []).append(alert)
    for key, product_id in must.items():
        if key not in open_alerts:
            report.differences.append(f"stock_alerts {product_id!r}: low but no open alert")
    for key, alerts in open_alerts.items():
        pid = alerts[0]["product_id"]
        if len(alerts) > 1:
            report.differences.append(f"stock_alerts {pid!r}: {len(alerts)} open alerts")
        if key not in must and key not in may:
            report.differences.append(f"stock_alerts {pid!r}: open alert but not low")


async def verify(mongo: Mongo, *, default_threshold: int, hysteresis: int = 0) -> VerifyReport:
    report = VerifyReport()
    await verify_totals(mongo, report)
    await verify_alerts(mongo, report, default_threshold=default_threshold, hysteresis=hysteresis)
    return report

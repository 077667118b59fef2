"""Low-stock alerts: when a product is low, and the transitions a batch of changes makes.

Pure functions only; :mod:`streamer.streams.inventory` does the reading and writing.

A product (``sku`` and ``name`` strings, an integer ``stock``, an optional integer
``low_stock_threshold``) is low when ``stock <= threshold``. Integers may arrive as
doubles (mongosh and JavaScript clients write 5 as 5.0), so an integral double counts
as an integer; 3.5 does not. A transition into low opens one alert; a rise above
``threshold + hysteresis`` resolves it ("restocked"); deleting the product resolves
it ("deleted"). A product whose document turns invalid keeps its alert as it was: its
stock is unknown, and the quarantine record says why.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .changes import Change
from .keys import bson_key
from .mirror import State, next_state
from .totals import Invalid, Rejected
from .values import Decimal128, Int64, ObjectId

INVENTORY_FIELDS: tuple[str, ...] = ("sku", "name", "stock", "low_stock_threshold")


@dataclass(frozen=True, slots=True)
class Product:
    sku: str
    name: str
    stock: int
    threshold: int

    @property
    def low(self) -> bool:
        return self.stock <= self.threshold


def as_integer(value: Any) -> int | None:
    """The integer a BSON number stands for, or None (bools and fractions are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Int64):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Decimal128):
        d = value.to_decimal()
        if d.is_finite() and d == d.to_integral_value():
            return int(d)
    return None


def assess_product(
    state: Mapping[str, Any] | None, default_threshold: int
) -> Product | Invalid | None:
    if state is None:
        return None
    sku, name = state.get("sku"), state.get("name")
    if not isinstance(sku, str) or not sku:
        return Invalid("sku is missing or not a string")
    if not isinstance(name, str):
        return Invalid("name is missing or not a string")
    if "stock" not in state:
        return Invalid("stock is missing")
    stock = as_integer(state["stock"])
    if stock is None:
        return Invalid("stock is not an integer")
    threshold = default_threshold
    if state.get("low_stock_threshold") is not None:
        custom = as_integer(state["low_stock_threshold"])
        if custom is None or custom < 0:
            return Invalid("low_stock_threshold is not a non-negative integer")
        threshold = custom
    return Product(sku, name, stock, threshold)


# "repaired": resolved by ``streamer verify --repair`` (open while the product is not
# low, or a second open alert for one product).
Resolution = Literal["restocked", "deleted", "repaired"]


@dataclass(frozen=True, slots=True)
class Transition:
    """An alert opened or resolved: logged, counted, and written."""

    kind: Literal["opened", "resolved"]
    product_id: Any
    sku: str | None
    name: str | None
    stock: int | None
    threshold: int | None
    at: dt.datetime
    resolution: Resolution | None = None


@dataclass(slots=True)
class InventoryEffects:
    states: dict[Hashable, tuple[Any, State | None]] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)  # new alert documents
    resolves: dict[Any, dict[str, Any]] = field(default_factory=dict)  # alert _id -> $set
    rejected: list[Rejected] = field(default_factory=list)
    # The _ids of ``inserts``: an alert opened and resolved in one batch is found by
    # _id, not by a pass over the batch's inserts (quadratic in a batch of thousands).
    opened: set[ObjectId] = field(default_factory=set)


def _open(effects: InventoryEffects, change: Change, p: Product) -> dict[str, Any]:
    alert = {
        "_id": ObjectId(),
        "product_id": change.key,
        "sku": p.sku,
        "name": p.name,
        "state": "open",
        "stock": p.stock,
        "threshold": p.threshold,
        "opened_at": change.wall_time,
    }
    effects.inserts.append(alert)
    effects.opened.add(alert["_id"])
    effects.transitions.append(
        Transition("opened", change.key, p.sku, p.name, p.stock, p.threshold, change.wall_time)
    )
    return alert


def _resolve(
    effects: InventoryEffects,
    alert: dict[str, Any],
    change: Change,
    p: Product | None,
    resolution: Resolution,
) -> None:
    fields = {
        "state": "resolved",
        "resolved_at": change.wall_time,
        "resolution": resolution,
        "resolved_stock": p.stock if p is not None else None,
    }
    if alert["_id"] in effects.opened:
        alert.update(fields)  # opened and resolved inside this batch
    else:
        effects.resolves[alert["_id"]] = fields
    effects.transitions.append(
        Transition(
            "resolved",
            change.key,
            p.sku if p else alert.get("sku"),
            p.name if p else alert.get("name"),
            p.stock if p else None,
            p.threshold if p else alert.get("threshold"),
            change.wall_time,
            resolution,
        )
    )


def plan_inventory(
    changes: Iterable[Change],
    prior: Mapping[Hashable, State | None],
    open_alerts: Mapping[Hashable, dict[str, Any]],
    *,
    default_threshold: int,
    hysteresis: int = 0,
) -> InventoryEffects:
    """Replay ``changes`` in order, each from its own state, against the open alerts.

    ``prior`` maps ``bson_key(product _id)`` to its stored state and ``open_alerts`` maps
    it to the product's open alert document, if any.
    """
    effects = InventoryEffects()
    current: dict[Hashable, State | None] = dict(prior)
    alerts: dict[Hashable, dict[str, Any]] = dict(open_alerts)
    for change in changes:
        key = bson_key(change.key)
        after = next_state(current[key], change)
        current[key] = after
        effects.states[key] = (change.key, after)
        product = assess_product(after, default_threshold)
        alert = alerts.get(key)
        if isinstance(product, Invalid):
            assert after is not None
            effects.rejected.append(Rejected(change, product.reason, after))
        elif product is None:
            if alert is not None:
                _resolve(effects, alerts.pop(key), change, None, "deleted")
        elif alert is None and product.low:
            alerts[key] = _open(effects, change, product)
        elif alert is not None and product.stock > product.threshold + hysteresis:
            _resolve(effects, alerts.pop(key), change, product, "restocked")
    return effects


def products_that_should_alert(
    states: Iterable[tuple[Any, Mapping[str, Any]]], default_threshold: int
) -> dict[Hashable, Any]:
    """Product ids that are low now (what ``streamer verify`` compares open alerts to).

    With hysteresis a product between threshold and threshold + hysteresis may or may not
    have an alert depending on its history; verify treats those as either.
    """
    out: dict[Hashable, Any] = {}
    for product_id, state in states:
        p = assess_product(state, default_threshold)
        if isinstance(p, Product) and p.low:
            out[bson_key(product_id)] = product_id
    return out


@dataclass(slots=True)
class AlertRepair:
    """What ``streamer verify --repair`` writes to ``stock_alerts``, and says it did."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    resolves: dict[Any, dict[str, Any]] = field(default_factory=dict)  # alert _id -> $set
    changed: list[str] = field(default_factory=list)


def plan_alert_repair(
    products: Mapping[Hashable, tuple[Any, Mapping[str, Any] | None]],
    open_alerts: Iterable[Mapping[str, Any]],
    now: dt.datetime,
    *,
    default_threshold: int,
    hysteresis: int = 0,
) -> AlertRepair:
    """Make the open alerts of ``products`` (``bson_key`` -> (_id, state at the stream's
    position, None if absent)) agree with their stock, changing as little as possible.

    A low product keeps its oldest open alert, or gets one opened now; one in the
    hysteresis band, or invalid, keeps whichever it has (either is right); any other
    product's open alerts are resolved. A second open alert is always resolved. The
    history the sources do not hold (when a missing alert should have opened) is not
    invented: a repaired alert opens at ``now`` and says it was opened by the repair.
    """
    by_product: dict[Hashable, list[Mapping[str, Any]]] = {}
    for alert in open_alerts:
        by_product.setdefault(bson_key(alert["product_id"]), []).append(alert)
    out = AlertRepair()
    for key, (product_id, state) in products.items():
        alerts = sorted(by_product.get(key, []), key=lambda a: str(a["_id"]))  # oldest first
        p = assess_product(state, default_threshold)
        keep = 1
        if not isinstance(p, Product) and p is not None:
            pass  # invalid: its stock is unknown, its alert stays as it was
        elif p is None or p.stock > p.threshold + hysteresis:
            keep = 0
        elif p.low and not alerts:
            out.inserts.append(
                {
                    "_id": ObjectId(),
                    "product_id": product_id,
                    "sku": p.sku,
                    "name": p.name,
                    "state": "open",
                    "stock": p.stock,
                    "threshold": p.threshold,
                    "opened_at": now,
                    "opened_by": "streamer verify --repair",
                }
            )
            out.changed.append(
                f"stock_alerts {product_id!r}: opened (stock {p.stock}, threshold {p.threshold})"
            )
        for alert in alerts[keep:]:
            out.resolves[alert["_id"]] = {
                "state": "resolved",
                "resolved_at": now,
                "resolution": "repaired",
                "resolved_stock": p.stock if isinstance(p, Product) else None,
            }
            why = "a second open alert" if keep else "not low"
            out.changed.append(
                f"stock_alerts {product_id!r}: alert {alert['_id']} resolved ({why})"
            )
    return out

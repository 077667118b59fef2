"""Low-stock alerts: which products are valid, and the transitions a batch of changes makes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Sequence
from typing import Any

import pytest
from bson import Decimal128, Int64, ObjectId, Timestamp

from streamer.core.alerts import (
    InventoryEffects,
    Product,
    assess_product,
    plan_alert_repair,
    plan_inventory,
)
from streamer.core.changes import Change, UpdateDescription
from streamer.core.keys import bson_key
from streamer.core.totals import Invalid

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
PID = "p1"
KEY = bson_key(PID)
THRESHOLD = 10


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


def ins(stock: Any, minute: int = 0, **extra: Any) -> Change:
    full = {"sku": "SKU-1", "name": "Widget", "stock": stock, **extra}
    return Change("insert", PID, Timestamp(1, 1), at(minute), full=full)


def stock(value: Any, minute: int = 0) -> Change:
    desc = UpdateDescription(updated={"stock": value})
    return Change("update", PID, Timestamp(1, 1), at(minute), update=desc)


def delete(minute: int = 0) -> Change:
    return Change("delete", PID, Timestamp(1, 1), at(minute))


PRIOR_HIGH = {KEY: {"sku": "SKU-1", "name": "Widget", "stock": 50}}


def plan(
    changes: Sequence[Change],
    prior: dict[Hashable, Any] | None = None,
    open_alerts: dict[Hashable, dict[str, Any]] | None = None,
    hysteresis: int = 0,
) -> InventoryEffects:
    return plan_inventory(
        changes,
        prior if prior is not None else {KEY: None},
        open_alerts or {},
        default_threshold=THRESHOLD,
        hysteresis=hysteresis,
    )


def kinds(effects: InventoryEffects) -> list[str]:
    return [t.kind for t in effects.transitions]


# -- assess_product --------------------------------------------------------------------------

VALID = {"sku": "S", "name": "N", "stock": 5}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(None, None, id="no-document"),
        pytest.param(VALID, Product("S", "N", 5, 10), id="valid"),
        pytest.param({**VALID, "stock": 5.0}, Product("S", "N", 5, 10), id="integral-double"),
        pytest.param({**VALID, "stock": Int64(7)}, Product("S", "N", 7, 10), id="int64"),
        pytest.param(
            {**VALID, "stock": Decimal128("4")}, Product("S", "N", 4, 10), id="integral-decimal"
        ),
        pytest.param({**VALID, "stock": -2}, Product("S", "N", -2, 10), id="negative-stock-is-low"),
        pytest.param(
            {**VALID, "low_stock_threshold": 3}, Product("S", "N", 5, 3), id="custom-threshold"
        ),
        pytest.param(
            {**VALID, "low_stock_threshold": 0}, Product("S", "N", 5, 0), id="zero-threshold"
        ),
        pytest.param(
            {**VALID, "low_stock_threshold": None}, Product("S", "N", 5, 10), id="null-threshold"
        ),
        pytest.param({**VALID, "stock": 3.5}, "stock is not an integer", id="fractional-stock"),
        pytest.param({**VALID, "stock": True}, "stock is not an integer", id="bool-stock"),
        pytest.param({**VALID, "stock": "5"}, "stock is not an integer", id="str-stock"),
        pytest.param({**VALID, "stock": None}, "stock is not an integer", id="null-stock"),
        pytest.param({"sku": "S", "name": "N"}, "stock is missing", id="missing-stock"),
        pytest.param({"name": "N", "stock": 1}, "sku is missing or not a string", id="no-sku"),
        pytest.param({**VALID, "sku": ""}, "sku is missing or not a string", id="empty-sku"),
        pytest.param({**VALID, "sku": 12}, "sku is missing or not a string", id="int-sku"),
        pytest.param({"sku": "S", "stock": 1}, "name is missing or not a string", id="no-name"),
        pytest.param(
            {**VALID, "low_stock_threshold": -1},
            "low_stock_threshold is not a non-negative integer",
            id="negative-threshold",
        ),
        pytest.param(
            {**VALID, "low_stock_threshold": 2.5},
            "low_stock_threshold is not a non-negative integer",
            id="fractional-threshold",
        ),
    ],
)
def test_assess_product(state: dict[str, Any] | None, expected: Any) -> None:
    """Valid products carry integer stock and threshold; invalid ones say why."""
    result = assess_product(state, default_threshold=10)
    assert result == (Invalid(expected) if isinstance(expected, str) else expected)


@pytest.mark.parametrize(
    ("stock_value", "low"), [(9, True), (10, True), (11, False)], ids=["below", "at", "above"]
)
def test_a_product_is_low_at_or_below_its_threshold(stock_value: int, low: bool) -> None:
    """low means stock <= threshold."""
    assert Product("S", "N", stock_value, 10).low is low


# -- plan_inventory --------------------------------------------------------------------------


def test_a_drop_to_the_threshold_opens_one_alert() -> None:
    """Falling to the threshold opens an alert holding the product and its stock."""
    effects = plan([stock(THRESHOLD, minute=3)], prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened"]
    (alert,) = effects.inserts
    assert isinstance(alert["_id"], ObjectId)
    assert {k: v for k, v in alert.items() if k != "_id"} == {
        "product_id": PID,
        "sku": "SKU-1",
        "name": "Widget",
        "state": "open",
        "stock": THRESHOLD,
        "threshold": THRESHOLD,
        "opened_at": at(3),
    }
    assert effects.resolves == {} and effects.rejected == []
    assert effects.states == {KEY: (PID, {"sku": "SKU-1", "name": "Widget", "stock": THRESHOLD})}


def test_staying_low_opens_nothing_more() -> None:
    """Further drops while an alert is open change nothing."""
    effects = plan([stock(8), stock(3), stock(0)], prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened"] and len(effects.inserts) == 1


def test_an_insert_below_the_threshold_opens_an_alert() -> None:
    """A new product that starts low gets an alert."""
    assert kinds(plan([ins(2)])) == ["opened"]


def test_staying_above_the_threshold_opens_nothing() -> None:
    """Changes above the threshold make no transitions."""
    effects = plan([ins(11), stock(40)])
    assert kinds(effects) == [] and effects.inserts == [] and effects.resolves == {}


def test_a_restock_above_the_threshold_resolves_the_alert() -> None:
    """Rising above the threshold resolves the in-batch alert as restocked."""
    effects = plan([stock(5, minute=1), stock(THRESHOLD + 1, minute=2)], prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened", "resolved"]
    (alert,) = effects.inserts
    assert alert["state"] == "resolved" and alert["resolution"] == "restocked"
    assert (alert["resolved_at"], alert["resolved_stock"]) == (at(2), THRESHOLD + 1)
    assert effects.transitions[1].resolution == "restocked"


@pytest.mark.parametrize(
    ("rise", "resolves"),
    [(3, False), (5, False), (6, True)],
    ids=["threshold+3-stays-open", "threshold+5-stays-open", "threshold+6-resolves"],
)
def test_hysteresis_delays_resolving(rise: int, resolves: bool) -> None:
    """With hysteresis 5 an alert resolves only above threshold + 5."""
    effects = plan([stock(2), stock(THRESHOLD + rise)], prior=PRIOR_HIGH, hysteresis=5)
    assert kinds(effects) == (["opened", "resolved"] if resolves else ["opened"])


def test_deleting_a_low_product_resolves_its_alert() -> None:
    """A deleted product's alert resolves as deleted, with no stock."""
    effects = plan([stock(1), delete(minute=9)], prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened", "resolved"]
    (alert,) = effects.inserts
    assert (alert["resolution"], alert["resolved_stock"], alert["resolved_at"]) == (
        "deleted",
        None,
        at(9),
    )
    last = effects.transitions[-1]
    assert (last.sku, last.name, last.stock, last.threshold) == ("SKU-1", "Widget", None, 10)


def test_deleting_a_product_without_alert_makes_no_transition() -> None:
    """A delete of a product that was not low does nothing to alerts."""
    effects = plan([delete()], prior=PRIOR_HIGH)
    assert kinds(effects) == [] and effects.states == {KEY: (PID, None)}


def test_five_changes_in_one_batch_replay_every_transition() -> None:
    """low, high, low, high, low: three alerts, the first two opened and resolved in-batch."""
    changes = [stock(v, minute=i) for i, v in enumerate([1, 30, 2, 40, 3])]
    effects = plan(changes, prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened", "resolved", "opened", "resolved", "opened"]
    assert [a["state"] for a in effects.inserts] == ["resolved", "resolved", "open"]
    assert [a["stock"] for a in effects.inserts] == [1, 2, 3]
    assert [a.get("resolved_stock") for a in effects.inserts] == [30, 40, None]
    assert len({a["_id"] for a in effects.inserts}) == 3
    assert effects.resolves == {}


def test_an_existing_open_alert_resolves_through_resolves() -> None:
    """An alert opened in an earlier batch is resolved by a $set, not by an insert."""
    existing = {"_id": ObjectId(), "product_id": PID, "state": "open", "threshold": 10}
    prior = {KEY: {"sku": "SKU-1", "name": "Widget", "stock": 4}}
    effects = plan([stock(20, minute=7)], prior=prior, open_alerts={KEY: existing})
    assert effects.inserts == []
    assert effects.resolves == {
        existing["_id"]: {
            "state": "resolved",
            "resolved_at": at(7),
            "resolution": "restocked",
            "resolved_stock": 20,
        }
    }
    assert existing["state"] == "open"  # the caller's document is not mutated


def test_an_existing_open_alert_is_not_opened_again() -> None:
    """A product still low with an open alert from before gets no second alert."""
    existing = {"_id": ObjectId(), "product_id": PID, "state": "open"}
    prior = {KEY: {"sku": "SKU-1", "name": "Widget", "stock": 4}}
    effects = plan([stock(2)], prior=prior, open_alerts={KEY: existing})
    assert kinds(effects) == [] and effects.inserts == [] and effects.resolves == {}


@pytest.mark.parametrize("has_alert", [True, False], ids=["alert-open", "no-alert"])
def test_an_invalid_document_is_rejected_and_leaves_the_alert_as_it_was(has_alert: bool) -> None:
    """Stock 'lots' is rejected; an open alert stays open and none is opened."""
    existing = {"_id": ObjectId(), "product_id": PID, "state": "open"}
    prior = {KEY: {"sku": "SKU-1", "name": "Widget", "stock": 4 if has_alert else 50}}
    alerts = {KEY: existing} if has_alert else {}
    effects = plan([stock("lots")], prior=prior, open_alerts=alerts)
    assert kinds(effects) == [] and effects.inserts == [] and effects.resolves == {}
    (rejected,) = effects.rejected
    assert rejected.reason == "stock is not an integer"
    assert rejected.state == {"sku": "SKU-1", "name": "Widget", "stock": "lots"}


def test_after_an_invalid_document_a_restock_still_resolves_the_alert() -> None:
    """The alert kept through an invalid state resolves once a valid high stock arrives."""
    effects = plan([stock(1), stock(None), stock(99)], prior=PRIOR_HIGH)
    assert kinds(effects) == ["opened", "resolved"]
    assert len(effects.rejected) == 1


# -- streamer verify --repair ------------------------------------------------------------


def repair(stock: Any, *alerts: dict[str, Any], hysteresis: int = 0) -> Any:
    """Plan the repair of PID, whose state is ``stock`` (None: deleted), with ``alerts`` open."""
    state = None if stock is None else {"sku": "SKU-1", "name": "Widget", "stock": stock}
    return plan_alert_repair(
        {KEY: (PID, state)},
        alerts,
        at(9),
        default_threshold=THRESHOLD,
        hysteresis=hysteresis,
    )


def open_alert(minute: int) -> dict[str, Any]:
    oid = ObjectId.from_datetime(at(minute))
    return {"_id": oid, "product_id": PID, "state": "open", "opened_at": at(minute)}


def test_repair_opens_the_missing_alert_of_a_low_product_now_and_says_so() -> None:
    plan = repair(3)
    [alert] = plan.inserts
    assert alert["state"] == "open" and alert["opened_at"] == at(9)
    assert alert["opened_by"] == "streamer verify --repair"
    assert (alert["stock"], alert["threshold"]) == (3, THRESHOLD)
    assert plan.changed == ["stock_alerts 'p1': opened (stock 3, threshold 10)"]
    assert not plan.resolves


@pytest.mark.parametrize("stock", [50, None], ids=["restocked", "deleted"])
def test_repair_resolves_the_open_alert_of_a_product_that_is_not_low(stock: Any) -> None:
    alert = open_alert(1)
    plan = repair(stock, alert)
    assert plan.resolves == {
        alert["_id"]: {
            "state": "resolved",
            "resolved_at": at(9),
            "resolution": "repaired",
            "resolved_stock": stock,
        }
    }
    assert not plan.inserts


def test_repair_keeps_the_oldest_of_two_open_alerts_and_resolves_the_other() -> None:
    older, newer = open_alert(1), open_alert(2)
    plan = repair(3, newer, older)
    assert list(plan.resolves) == [newer["_id"]] and not plan.inserts
    assert plan.changed == [
        f"stock_alerts 'p1': alert {newer['_id']} resolved (a second open alert)"
    ]


@pytest.mark.parametrize("alerts", [0, 1])
def test_repair_leaves_a_product_in_the_hysteresis_band_or_invalid_as_it_is(alerts: int) -> None:
    """Inside the band either state is right; an invalid product's stock is unknown."""
    existing = [open_alert(1)][:alerts]
    for plan in (repair(12, *existing, hysteresis=5), repair("many", *existing)):
        assert not plan.inserts and not plan.resolves and not plan.changed

"""Order totals: which orders count, and how batches of changes move per-user totals."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Hashable, Sequence
from typing import Any

import pytest
from bson import Decimal128, Int64, Regex, Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.changes import Change, UpdateDescription
from streamer.core.keys import bson_key
from streamer.core.mirror import State
from streamer.core.totals import (
    Contribution,
    Invalid,
    Totals,
    apply_moves,
    assess_order,
    plan_orders,
    recompute_totals,
    to_decimal,
    totals_document,
)

D = decimal.Decimal
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def at(day: int) -> dt.datetime:
    return T0 + dt.timedelta(days=day)


def ins(key: Any, **doc: Any) -> Change:
    return Change("insert", key, Timestamp(1, 1), T0, full=doc)


def rep(key: Any, **doc: Any) -> Change:
    return Change("replace", key, Timestamp(1, 1), T0, full=doc)


def upd(key: Any, removed: Sequence[str] = (), **updated: Any) -> Change:
    desc = UpdateDescription(updated=updated, removed=tuple(removed))
    return Change("update", key, Timestamp(1, 1), T0, update=desc)


def dele(key: Any) -> Change:
    return Change("delete", key, Timestamp(1, 1), T0)


def order(user: Any = "u1", amount: Any = 10, status: Any = "completed", day: int = 0) -> State:
    return {"user_id": user, "amount": amount, "status": status, "created_at": at(day)}


class Ledger:
    """Carries mirror states and totals across batches, recomputing last_order_at when asked."""

    def __init__(self) -> None:
        self.states: dict[Hashable, State | None] = {}
        self.totals: dict[Hashable, Totals] = {}
        self.flagged: set[Hashable] = set()
        self.rejected: list[str] = []

    def apply(self, batch: Sequence[Change]) -> None:
        prior = {bson_key(c.key): self.states.get(bson_key(c.key)) for c in batch}
        effects = plan_orders(batch, prior)
        self.rejected += [r.reason for r in effects.rejected]
        for key, (_, state) in effects.states.items():
            self.states[key] = state
        flagged = apply_moves(self.totals, effects.moves)
        self.flagged |= flagged
        for user in flagged:
            dates = [
                c.created_at
                for c in self.contributions()
                if c.user == user and c.status == "completed" and c.created_at is not None
            ]
            self.totals[user].last_order_at = max(dates, default=None)

    def contributions(self) -> list[Contribution]:
        found = [assess_order(s) for s in self.states.values()]
        return [c for c in found if isinstance(c, Contribution)]

    def view(self, user: Any) -> tuple[D, int, dict[str, int], dt.datetime | None]:
        t = self.totals[bson_key(user)]
        return t.total, t.count, t.by_status, t.last_order_at


# -- assess_order ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(None, None, id="no-document"),
        pytest.param(order(), Contribution("u1", D(10), "completed", at(0)), id="valid"),
        pytest.param(
            {**order(), "created_at": "2024-01-01"},
            Contribution("u1", D(10), "completed", None),
            id="created-at-not-a-date-is-none",
        ),
        pytest.param({"amount": 1, "status": "pending"}, "user_id is missing", id="no-user"),
        pytest.param(order(user=None), "user_id is missing", id="user-null"),
        pytest.param(order(user=[1, 2]), "user_id is an array (an _id cannot be)", id="user-array"),
        pytest.param(
            order(user=Regex("^a")),
            "user_id is a regular expression (an _id cannot be)",
            id="user-regex",
        ),
        pytest.param(order(amount="abc"), "amount is a str, not a number", id="amount-str"),
        pytest.param(order(amount=float("nan")), "amount is not finite", id="amount-nan"),
        pytest.param(order(amount=float("inf")), "amount is not finite", id="amount-inf"),
        pytest.param(order(amount=-1), "amount is negative", id="amount-negative"),
        pytest.param(order(amount=True), "amount is a boolean, not a number", id="amount-bool"),
        pytest.param(order(amount=None), "amount is missing", id="amount-null"),
        pytest.param(
            order(amount=Decimal128("NaN")), "amount is not finite", id="amount-decimal-nan"
        ),
        pytest.param({"user_id": "u1", "amount": 1}, "status is missing", id="no-status"),
        pytest.param(order(status=3), "status is not a string", id="status-int"),
    ],
)
def test_assess_order(state: dict[str, Any] | None, expected: Any) -> None:
    """Valid orders contribute; invalid ones say why; a missing document is None."""
    result = assess_order(state)
    if isinstance(expected, str):
        assert result == Invalid(expected)
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.1, D("0.1"), id="double-by-shortest-repr"),
        pytest.param(Int64(7), D(7), id="int64"),
        pytest.param(Decimal128("19.990"), D("19.990"), id="decimal128"),
        pytest.param(0, D(0), id="zero"),
    ],
)
def test_to_decimal_gives_exact_values(value: Any, expected: D) -> None:
    """Doubles count as their shortest repr, so 0.1 is exactly Decimal('0.1')."""
    assert to_decimal(value) == expected


# -- plan_orders and apply_moves over sequences ---------------------------------------------


def test_insert_adds_to_the_users_totals() -> None:
    """A completed order adds to total, count, by_status and last_order_at."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(amount=0.1, day=1)), ins("o2", **order(amount=0.2, day=2))])
    assert ledger.view("u1") == (D("0.3"), 2, {"completed": 2}, at(2))


def test_non_completed_orders_count_only_by_status() -> None:
    """A pending order appears in by_status but not in total or count."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(status="pending", day=3))])
    assert ledger.view("u1") == (D(0), 0, {"pending": 1}, None)


def test_status_and_amount_changes_move_the_totals() -> None:
    """pending -> completed adds; an amount change replaces the old amount."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(status="pending", amount=5))])
    ledger.apply([upd("o1", status="completed")])
    assert ledger.view("u1") == (D(5), 1, {"completed": 1}, at(0))
    ledger.apply([upd("o1", amount=Decimal128("7.25"))])
    assert ledger.view("u1")[:2] == (D("7.25"), 1)


def test_reassigning_the_user_moves_the_totals_between_users() -> None:
    """Changing user_id takes the order out of one user's totals and into the other's."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(user="a", amount=4)), ins("o2", **order(user="a", amount=6))])
    ledger.apply([upd("o1", user_id="b")])
    assert ledger.view("a")[:3] == (D(6), 1, {"completed": 1})
    assert ledger.view("b")[:3] == (D(4), 1, {"completed": 1})


def test_delete_and_replace() -> None:
    """A delete removes the order's contribution; a replace swaps it for the new one."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(amount=3)), ins("o2", **order(amount=4))])
    ledger.apply([dele("o1"), rep("o2", **order(amount=9, status="cancelled"))])
    assert ledger.view("u1") == (D(0), 0, {"cancelled": 1}, None)


def test_an_order_turning_invalid_stops_counting_until_valid_again() -> None:
    """An invalid order is rejected and not counted; fixing it counts it again."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(amount=8))])
    ledger.apply([upd("o1", amount="eight")])
    assert ledger.rejected == ["amount is a str, not a number"]
    assert ledger.view("u1")[:3] == (D(0), 0, {})
    ledger.apply([upd("o1", amount=8.5)])
    assert ledger.view("u1")[:3] == (D("8.5"), 1, {"completed": 1})


def test_several_changes_to_one_order_in_one_batch_replay_in_order() -> None:
    """Each change is assessed from its own state, so one batch gives the final totals."""
    ledger = Ledger()
    ledger.apply(
        [
            ins("o1", **order(status="pending", amount=1)),
            upd("o1", status="completed"),
            upd("o1", amount=-5),
            upd("o1", amount=2, user_id="u2"),
            upd("o1", removed=["created_at"]),
        ]
    )
    assert ledger.view("u1")[:3] == (D(0), 0, {})
    assert ledger.view("u2") == (D(2), 1, {"completed": 1}, None)  # created_at removed


def test_the_plan_keeps_each_orders_assessment_of_its_last_state() -> None:
    """What the mirror's query fields are made from: the last state's, one per order."""
    effects = plan_orders(
        [
            ins("o1", **order(status="pending")),
            upd("o1", status="completed"),
            ins("o2", **order(amount=-1)),
            ins("o3", **order()),
            dele("o3"),
        ],
        dict.fromkeys(map(bson_key, ("o1", "o2", "o3"))),
    )
    assert effects.assessed == {
        bson_key("o1"): Contribution("u1", D(10), "completed", at(0)),
        bson_key("o2"): Invalid("amount is negative"),
        bson_key("o3"): None,
    }


def test_removing_the_latest_completed_order_flags_last_order_at_for_recompute() -> None:
    """Only a removal of the latest completed order asks for a recompute."""
    totals: dict[Hashable, Totals] = {}
    old = Contribution("u", D(1), "completed", at(1))
    latest = Contribution("u", D(2), "completed", at(5))
    assert apply_moves(totals, [(None, old), (None, latest)]) == set()
    assert totals[bson_key("u")].last_order_at == at(5)
    assert apply_moves(totals, [(old, None)]) == set()
    assert apply_moves(totals, [(latest, None)]) == {bson_key("u")}


def test_reassigning_user_1_to_user_true_moves_the_totals() -> None:
    """user_id 1 and true are different users (bson_key differs), so totals must move."""
    ledger = Ledger()
    ledger.apply([ins("o1", **order(user=1, amount=5))])
    ledger.apply([upd("o1", user_id=True)])
    assert ledger.view(True)[:2] == (D(5), 1)
    assert ledger.view(1)[:2] == (D(0), 0)


# -- totals_document -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "avg"),
    [
        pytest.param(D(0), 0, None, id="no-completed-orders"),
        pytest.param(D(10), 3, Decimal128("3.333333333333333333333333333333333"), id="10/3"),
        pytest.param(D("0.3"), 2, Decimal128("0.15"), id="exact"),
    ],
)
def test_totals_document(total: D, count: int, avg: Decimal128 | None) -> None:
    """total is Decimal128, avg is total/count to 34 digits (None without orders)."""
    t = Totals("u1", total=total, count=count, by_status={"pending": 1, "completed": count})
    doc = totals_document(t, T0)
    assert doc["total"] == Decimal128(total) and doc["avg"] == avg and doc["count"] == count
    assert list(doc["by_status"]) == ["completed", "pending"]
    assert (doc["_id"], doc["updated_at"], doc["last_order_at"]) == ("u1", T0, None)


# -- property: incremental totals equal a recount --------------------------------------------

ORDER_IDS = ["o1", "o2", "o3"]
USERS = st.sampled_from([1, Int64(1), 1.0, 2, "u3"])
AMOUNTS = st.one_of(
    st.integers(0, 100),
    st.sampled_from([0.1, 0.2, 19.99, 1e-3]),
    st.decimals(0, 1000, places=2).map(lambda d: Decimal128(str(d))),
)
FIELDS = {
    "user_id": st.one_of(USERS, st.sampled_from([None, [1]])),
    "amount": st.one_of(AMOUNTS, st.sampled_from([-1, "x", float("nan"), None])),
    "status": st.one_of(st.sampled_from(["completed", "pending", "cancelled"]), st.just(7)),
    "created_at": st.integers(0, 5).map(at),
}
# Mostly valid values, so that most histories keep several orders counting.
WEIGHTED = {
    **FIELDS,
    "user_id": st.one_of(*[USERS] * 8, FIELDS["user_id"]),
    "amount": st.one_of(*[AMOUNTS] * 6, FIELDS["amount"]),
}


@st.composite
def histories(draw: st.DrawFn) -> list[Change]:
    alive: set[str] = set()
    changes: list[Change] = []
    for _ in range(draw(st.integers(1, 25))):
        key = draw(st.sampled_from(ORDER_IDS))
        if key not in alive:
            op = "insert"
        else:
            op = draw(st.sampled_from(["update", "update", "replace", "delete"]))
        if op in ("insert", "replace"):
            doc = {name: draw(s) for name, s in WEIGHTED.items() if draw(st.integers(0, 9))}
            changes.append(ins(key, **doc) if op == "insert" else rep(key, **doc))
            alive.add(key)
        elif op == "update":
            names = draw(st.lists(st.sampled_from(list(FIELDS)), min_size=1, unique=True))
            removed = [n for n in names if not draw(st.integers(0, 7))]
            updated = {n: draw(WEIGHTED[n]) for n in names if n not in removed}
            changes.append(upd(key, removed, **updated))
        else:
            changes.append(dele(key))
            alive.discard(key)
    return changes


@settings(max_examples=300, deadline=None)
@given(changes=histories(), data=st.data())
def test_incremental_totals_match_a_recount(changes: list[Change], data: st.DataObject) -> None:
    """Any batch split of any history gives exactly the totals recomputed from the orders."""
    cuts = sorted(data.draw(st.sets(st.integers(1, len(changes)), max_size=6)) | {len(changes)})
    ledger, start = Ledger(), 0
    for end in cuts:
        ledger.apply(changes[start:end])
        start = end
    expected = recompute_totals(ledger.contributions())
    for user, t in ledger.totals.items():
        want = expected.get(user)
        if want is None:
            assert (t.total, t.count, t.by_status) == (D(0), 0, {})
            continue
        got = (t.total, t.count, t.by_status, t.last_order_at)
        assert got == (want.total, want.count, want.by_status, want.last_order_at)
    assert set(expected) <= set(ledger.totals)

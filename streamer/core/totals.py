"""Per-user order totals: which orders count, and how a batch of changes moves totals.

Pure functions only; :mod:`streamer.streams.orders` does the reading and writing.

An order is valid when it has a ``user_id`` (not null, not an array or regex, which
cannot be an ``_id``), a finite number ``amount >= 0`` (a bool is not a number) and a
string ``status``. Amounts are summed as exact decimals: a double counts as its
shortest repr, so 0.1 + 0.2 is 0.3. Totals are stored as Decimal128 (34 digits).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .changes import Change
from .keys import bson_key
from .mirror import State, next_state
from .values import Decimal128, Int64, Regex

ORDER_FIELDS: tuple[str, ...] = ("user_id", "amount", "status", "created_at")
COMPLETED = "completed"

# Decimal128's own context (IEEE 754-2008 decimal128), without trapping Inexact: an
# average like 10/3 rounds to 34 digits instead of failing.
DECIMAL128 = decimal.Context(
    prec=34, rounding=decimal.ROUND_HALF_EVEN, Emin=-6143, Emax=6144, clamp=1, traps=[]
)
ZERO = decimal.Decimal(0)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one valid order adds to its user's totals."""

    user_id: Any
    amount: decimal.Decimal
    status: str
    created_at: dt.datetime | None

    @property
    def user(self) -> Hashable:
        return bson_key(self.user_id)


@dataclass(frozen=True, slots=True)
class Invalid:
    reason: str


def to_decimal(value: Any) -> decimal.Decimal | str:
    """The exact decimal value of a BSON number, or why it is not a usable amount."""
    if isinstance(value, bool):
        return "amount is a boolean, not a number"
    if isinstance(value, int | Int64):
        number = decimal.Decimal(int(value))
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "amount is not finite"
        number = decimal.Decimal(repr(value))
    elif isinstance(value, Decimal128):
        number = value.to_decimal()
        if not number.is_finite():
            return "amount is not finite"
    elif value is None:
        return "amount is missing"
    else:
        return f"amount is a {type(value).__name__}, not a number"
    if number < 0:
        return "amount is negative"
    return number


def assess_order(state: Mapping[str, Any] | None) -> Contribution | Invalid | None:
    """The order's contribution, why it is invalid, or None when it does not exist."""
    if state is None:
        return None
    user_id = state.get("user_id")
    if user_id is None:
        return Invalid("user_id is missing")
    if isinstance(user_id, list):
        return Invalid("user_id is an array (an _id cannot be)")
    if isinstance(user_id, Regex | re.Pattern):
        return Invalid("user_id is a regular expression (an _id cannot be)")
    amount = to_decimal(state.get("amount"))
    if isinstance(amount, str):
        return Invalid(amount)
    status = state.get("status")
    if not isinstance(status, str):
        return Invalid("status is missing" if status is None else "status is not a string")
    created = state.get("created_at")
    return Contribution(
        user_id=user_id,
        amount=amount,
        status=status,
        created_at=created if isinstance(created, dt.datetime) else None,
    )


@dataclass(slots=True)
class Sums:
    """Sums over some of one user's orders: what a user's totals and a share of them
    (:class:`streamer.core.deltas.Delta`) have in common."""

    user_id: Any
    total: decimal.Decimal = ZERO
    count: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def sums_fields(doc: Mapping[str, Any], id_field: str) -> dict[str, Any]:
    """A stored document's :class:`Sums` fields, its user's id read from ``id_field``."""
    total = doc.get("total")
    return {
        "user_id": doc[id_field],
        "total": total.to_decimal() if isinstance(total, Decimal128) else ZERO,
        "count": int(doc.get("count") or 0),
        "by_status": {str(k): int(v) for k, v in (doc.get("by_status") or {}).items()},
    }


@dataclass(slots=True)
class Totals(Sums):
    """One user's totals, in Python types."""

    last_order_at: dt.datetime | None = None

    def add(self, c: Contribution) -> None:
        self.by_status[c.status] = self.by_status.get(c.status, 0) + 1
        if c.status == COMPLETED:
            self.total = DECIMAL128.add(self.total, c.amount)
            self.count += 1
            if c.created_at is not None and (
                self.last_order_at is None or c.created_at > self.last_order_at
            ):
                self.last_order_at = c.created_at

    def remove(self, c: Contribution) -> bool:
        """Take ``c`` out; True when last_order_at must be recomputed from the orders."""
        left = self.by_status.get(c.status, 0) - 1
        if left > 0:
            self.by_status[c.status] = left
        else:
            self.by_status.pop(c.status, None)
        if c.status != COMPLETED:
            return False
        self.total = DECIMAL128.subtract(self.total, c.amount)
        self.count -= 1
        return c.created_at is not None and (
            self.last_order_at is None or c.created_at >= self.last_order_at
        )

    @property
    def empty(self) -> bool:
        return not self.by_status


def totals_from_document(doc: Mapping[str, Any]) -> Totals:
    return Totals(**sums_fields(doc, "_id"), last_order_at=doc.get("last_order_at"))


def totals_document(t: Totals, now: dt.datetime) -> dict[str, Any]:
    """The stored ``user_totals`` document."""
    total = DECIMAL128.plus(t.total)
    avg = DECIMAL128.divide(total, decimal.Decimal(t.count)) if t.count else None
    return {
        "_id": t.user_id,
        "total": Decimal128(total),
        "count": t.count,
        "avg": Decimal128(avg) if avg is not None else None,
        "by_status": dict(sorted(t.by_status.items())),
        "last_order_at": t.last_order_at,
        "updated_at": now,
    }


@dataclass(frozen=True, slots=True)
class Rejected:
    """A change whose resulting order is invalid (quarantined, and not counted)."""

    change: Change
    reason: str
    state: State


@dataclass(slots=True)
class OrderEffects:
    """What a batch of order changes does."""

    states: dict[Hashable, tuple[Any, State | None]] = field(default_factory=dict)
    moves: list[tuple[Contribution | None, Contribution | None]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    # Each order's assessed last state (the mirror's query fields come from it).
    assessed: dict[Hashable, Contribution | Invalid | None] = field(default_factory=dict)


def same_contribution(a: Contribution | None, b: Contribution | None) -> bool:
    """Equal, with user ids compared as the server does (True is not 1)."""
    if a is None or b is None:
        return a is b
    return a == b and a.user == b.user


def plan_orders(changes: Iterable[Change], prior: Mapping[Hashable, State | None]) -> OrderEffects:
    """Replay ``changes`` in order over the previous states of the orders they touch.

    ``prior`` maps ``bson_key(order _id)`` to the stored state (None: never seen or
    deleted); every key a change touches must be present. Raises
    :class:`streamer.core.mirror.UnknownPriorState` for an update to an order never seen.
    """
    effects = OrderEffects()
    current: dict[Hashable, State | None] = dict(prior)
    # Each order's assessed current state: an event's "before" is the last one's "after".
    assessed = effects.assessed
    for change in changes:
        key = bson_key(change.key)
        before = current[key]
        after = next_state(before, change)
        current[key] = after
        effects.states[key] = (change.key, after)
        old = assessed[key] if key in assessed else assess_order(before)
        new = assessed[key] = assess_order(after)
        if isinstance(new, Invalid):
            assert after is not None
            effects.rejected.append(Rejected(change, new.reason, after))
        old_c = old if isinstance(old, Contribution) else None
        new_c = new if isinstance(new, Contribution) else None
        if not same_contribution(old_c, new_c):
            effects.moves.append((old_c, new_c))
    return effects


def apply_moves(
    totals: dict[Hashable, Totals],
    moves: Sequence[tuple[Contribution | None, Contribution | None]],
) -> set[Hashable]:
    """Move ``totals`` (keyed by ``bson_key(user_id)``, extended as needed).

    Returns the users whose last_order_at must be recomputed from their orders.
    """
    recompute: set[Hashable] = set()
    for old, new in moves:
        if old is not None:
            t = totals.setdefault(old.user, Totals(old.user_id))
            if t.remove(old):
                recompute.add(old.user)
        if new is not None:
            totals.setdefault(new.user, Totals(new.user_id)).add(new)
    return recompute


def recompute_totals(contributions: Iterable[Contribution]) -> dict[Hashable, Totals]:
    """Totals from scratch: what ``streamer verify`` compares against."""
    out: dict[Hashable, Totals] = {}
    for c in contributions:
        out.setdefault(c.user, Totals(c.user_id)).add(c)
    return out

"""A plain model of what the derived data must be, written independently of the service.

Tests drive single-statement writes through it; it records each order's final state
and each product's sequence of stock levels, from which the expected totals and the
expected alert opens and resolves follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bson import Decimal128
from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    NotPrimaryError,
    OperationFailure,
    ServerSelectionTimeoutError,
)

# Errors a primary returns before executing a write: safe to send it again.
NOT_EXECUTED = frozenset({10107, 11602, 13435, 189, 91, 11600})

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
STATUSES = ("completed", "pending", "cancelled", "refunded")


def expected_totals(orders: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """Totals recomputed plainly from the final orders."""
    out: dict[Any, dict[str, Any]] = {}
    for o in orders:
        user, amount, status = o.get("user_id"), o.get("amount"), o.get("status")
        if user is None or isinstance(user, list) or not isinstance(status, str):
            continue
        if isinstance(amount, bool):
            continue
        if isinstance(amount, Decimal128):
            value = amount.to_decimal()
        elif isinstance(amount, int | float) and math.isfinite(amount):
            value = Decimal(repr(amount))
        else:
            continue
        if not value.is_finite() or value < 0:
            continue
        t = out.setdefault(user, {"total": Decimal(0), "count": 0, "by_status": {}, "last": None})
        t["by_status"][status] = t["by_status"].get(status, 0) + 1
        if status == "completed":
            t["total"] += value
            t["count"] += 1
            created = o.get("created_at")
            if isinstance(created, dt.datetime):
                created = created.replace(tzinfo=dt.UTC)
                t["last"] = created if t["last"] is None else max(t["last"], created)
    return out


def totals_differences(
    expected: dict[Any, dict[str, Any]], stored: list[dict[str, Any]]
) -> list[str]:
    """Every way the stored user_totals differ from the expected ones."""
    by_id = {d["_id"]: d for d in stored}
    out = [f"extra user {u!r}" for u in by_id.keys() - expected.keys()]
    for user, want in expected.items():
        got = by_id.get(user)
        if got is None:
            out.append(f"missing user {user!r}")
            continue
        if got["total"].to_decimal() != want["total"] or got["count"] != want["count"]:
            out.append(
                f"{user!r}: {got['total']}/{got['count']} != {want['total']}/{want['count']}"
            )
        if got["by_status"] != want["by_status"]:
            out.append(f"{user!r}: by_status {got['by_status']} != {want['by_status']}")
    return out


async def drive(traffic: Traffic, events: int, halfway: asyncio.Event | None = None) -> None:
    """``events`` more writes; ``halfway`` is set once half of them are done.

    A fault meant to land mid-traffic waits for ``halfway``: by count, it lands while the
    other half is written, where a fault after a fixed sleep lands after the last write on
    a fast machine.
    """
    half = traffic.events + events // 2
    target = traffic.events + events
    while traffic.events < target:
        if halfway is not None and traffic.events >= half:
            halfway.set()
        await traffic.step()
    if halfway is not None:
        halfway.set()  # zero events: no half to wait for


@dataclass
class Product:
    exists: bool = False
    stock: int = 0
    threshold: int = 10
    opens: int = 0
    resolves: int = 0
    alert_open: bool = False

    def observe(self, exists: bool, stock: int = 0) -> None:
        """Count the transitions this state change makes (hysteresis 0)."""
        low = exists and stock <= self.threshold
        if low and not self.alert_open:
            self.opens += 1
            self.alert_open = True
        elif self.alert_open and (not exists or stock > self.threshold):
            self.resolves += 1
            self.alert_open = False
        self.exists, self.stock = exists, stock


@dataclass
class Traffic:
    """Random single-statement writes to orders and inventory, and what they imply."""

    db: AsyncIOMotorDatabase[Any]
    rng: random.Random
    users: int = 20
    order_ids: int = 300
    product_ids: int = 15
    events: int = 0
    products: dict[int, Product] = field(default_factory=dict)
    live_orders: set[int] = field(default_factory=set)
    # With tolerant=True writes ride out outages, but a write lost with its connection
    # may have applied or not: the stock model then is no longer exact (uncertain).
    tolerant: bool = False
    uncertain: bool = False
    # The share of orders (new or moved) that go to user 0, a hot user whose orders land
    # in every partition of a split stream.
    hot_share: float = 0.0

    async def write(self, op: Callable[[], Awaitable[Any]]) -> Any:
        while True:
            try:
                return await op()
            except NotPrimaryError:
                pass  # refused before it ran: send it again
            except OperationFailure as exc:
                if exc.code not in NOT_EXECUTED:
                    raise
            except (AutoReconnect, ServerSelectionTimeoutError):
                if not self.tolerant:
                    raise
                self.uncertain = True
            # A retry's backoff, not a wait on state: the write is sent again until
            # the primary takes it.
            await asyncio.sleep(0.05)

    async def step(self) -> None:
        if self.rng.random() < 0.6:
            await self.order_step()
        else:
            await self.inventory_step()
        self.events += 1

    def user(self) -> int:
        """A user id; user 0 is the hot one, with ``hot_share`` of the orders."""
        r = self.rng
        if self.hot_share and r.random() < self.hot_share:
            return 0
        return r.randrange(self.users)

    def order(self) -> dict[str, Any]:
        r = self.rng
        return {
            "user_id": self.user(),
            "amount": r.choice([r.randrange(1, 500), round(r.uniform(0, 300), 2)]),
            "status": r.choice(STATUSES),
            "created_at": T0 + dt.timedelta(minutes=r.randrange(10_000)),
        }

    async def order_step(self) -> None:
        r, orders = self.rng, self.db.orders
        oid = r.randrange(self.order_ids)
        if oid not in self.live_orders:
            doc = {"_id": oid, **self.order()}
            await self.write(lambda: self._insert_once(orders, doc))
            self.live_orders.add(oid)
            return
        choice = r.random()
        if choice < 0.3:
            update = {"$set": {"status": r.choice(STATUSES)}}
            await self.write(lambda: orders.update_one({"_id": oid}, update))
        elif choice < 0.5:
            inc = {"$inc": {"amount": r.randrange(1, 50)}}
            await self.write(lambda: orders.update_one({"_id": oid}, inc))
        elif choice < 0.65:
            move = {"$set": {"user_id": self.user()}}
            await self.write(lambda: orders.update_one({"_id": oid}, move))
        elif choice < 0.8:
            replacement = self.order()
            await self.write(lambda: orders.replace_one({"_id": oid}, replacement))
        else:
            await self.write(lambda: orders.delete_one({"_id": oid}))
            self.live_orders.discard(oid)

    async def inventory_step(self) -> None:
        r, inventory = self.rng, self.db.inventory
        pid = r.randrange(self.product_ids)
        p = self.products.setdefault(pid, Product())
        if not p.exists:
            stock = r.randrange(0, 40)
            doc = {"_id": pid, "sku": f"SKU-{pid}", "name": f"Product {pid}", "stock": stock}
            await self.write(lambda: self._insert_once(inventory, doc))
            p.observe(True, stock)
        elif r.random() < 0.1:
            await self.write(lambda: inventory.delete_one({"_id": pid}))
            p.observe(False)
        else:
            delta = r.randrange(-12, 13)
            await self.write(lambda: inventory.update_one({"_id": pid}, {"$inc": {"stock": delta}}))
            p.observe(True, p.stock + delta)

    @staticmethod
    async def _insert_once(coll: Any, doc: dict[str, Any]) -> None:
        # DuplicateKey: an earlier attempt, lost with its connection, did apply.
        with contextlib.suppress(DuplicateKeyError):
            await coll.insert_one(doc)

    async def alert_differences(self) -> list[str]:
        out = []
        for pid, p in self.products.items():
            alerts = await self.db.stock_alerts.find({"product_id": pid}).to_list(None)
            opened = len(alerts)
            resolved = sum(a["state"] == "resolved" for a in alerts)
            if (opened, resolved) != (p.opens, p.resolves):
                out.append(
                    f"product {pid}: {opened} opened/{resolved} resolved, "
                    f"expected {p.opens}/{p.resolves}"
                )
        return out


@contextlib.asynccontextmanager
async def continuous(traffic: Traffic) -> AsyncIterator[None]:
    """Traffic runs as a task for the block; its failure fails the test."""
    stop = asyncio.Event()

    async def run() -> None:
        while not stop.is_set():
            await traffic.step()

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        await task  # re-raises what the traffic hit

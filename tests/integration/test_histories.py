"""Generated histories of order changes end in totals equal to a recomputation.

Hypothesis writes random histories (inserts, status and amount changes, user
reassignments, replaces, deletes, orders turning invalid and valid again, some of them
grouped in transactions) through Motor while the service runs; the stored totals must
then equal an independent recomputation from the orders exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from decimal import Decimal
from typing import Any

from bson import Decimal128
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.settings import Settings
from tests.support.model import expected_totals
from tests.support.service import RunService, caught_up

ORDER_IDS = range(6)
USERS = range(3)
STATUSES = ["completed", "pending", "cancelled"]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

amounts = st.one_of(
    st.integers(0, 10_000),
    st.decimals(0, 10_000, places=2, allow_nan=False).map(float),
    st.decimals(0, 10_000, places=3, allow_nan=False).map(lambda d: Decimal128(str(d))),
    st.sampled_from([-1, "abc", math.nan, True, None]),  # invalid
)
times = st.integers(0, 1000).map(lambda m: T0 + dt.timedelta(minutes=m))
orders = st.fixed_dictionaries(
    {
        "user_id": st.one_of(st.sampled_from(USERS), st.none()),
        "amount": amounts,
        "status": st.one_of(st.sampled_from(STATUSES), st.just(7)),
        "created_at": times,
    }
)
steps = st.one_of(
    st.tuples(st.just("insert"), st.sampled_from(ORDER_IDS), orders),
    st.tuples(st.just("replace"), st.sampled_from(ORDER_IDS), orders),
    st.tuples(st.just("set"), st.sampled_from(ORDER_IDS), orders),
    st.tuples(st.just("unset_amount"), st.sampled_from(ORDER_IDS), st.none()),
    st.tuples(st.just("delete"), st.sampled_from(ORDER_IDS), st.none()),
)
histories = st.lists(st.lists(steps, min_size=1, max_size=4), min_size=1, max_size=12)


async def apply_step(db: AsyncIOMotorDatabase[Any], step: Any, ns: str, session: Any) -> None:
    kind, order_id, order = step
    key = f"{ns}-{order_id}"
    if order is not None and order["user_id"] is not None:
        order = {**order, "user_id": f"{ns}-u{order['user_id']}"}
    opts = {"session": session, "bypass_document_validation": True}
    if kind == "insert":
        await db.orders.update_one({"_id": key}, {"$setOnInsert": order}, upsert=True, **opts)
    elif kind == "replace":
        await db.orders.replace_one({"_id": key}, order, upsert=True, **opts)
    elif kind == "set":
        await db.orders.update_one({"_id": key}, {"$set": order}, **opts)
    elif kind == "unset_amount":
        await db.orders.update_one({"_id": key}, {"$unset": {"amount": ""}}, **opts)
    else:
        await db.orders.delete_one({"_id": key}, session=session)


@examples(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
async def test_generated_histories_end_in_exact_totals(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    service: RunService,
    history: list[list[Any]],
) -> None:
    """Whatever the history, each user's stored totals equal a recomputation."""
    ns = uuid.uuid4().hex[:8]
    async with service(settings):
        for group in history:
            if len(group) > 1:
                async with await db.client.start_session() as s, s.start_transaction():
                    for step in group:
                        await apply_step(db, step, ns, s)
            else:
                await apply_step(db, group[0], ns, None)
        await caught_up(db)
    final = await db.orders.find({"_id": {"$regex": f"^{ns}-"}}).to_list(None)
    expected = expected_totals(final)
    stored = {d["_id"]: d async for d in db.user_totals.find({"_id": {"$regex": f"^{ns}-"}})}
    assert set(stored) == set(expected)
    for user, want in expected.items():
        got = stored[user]
        assert got["total"].to_decimal() == want["total"], user
        assert got["count"] == want["count"]
        assert got["by_status"] == want["by_status"]
        last = got["last_order_at"]
        assert (last.replace(tzinfo=dt.UTC) if last else None) == want["last"]
        if want["count"]:
            mean = want["total"] / want["count"]
            assert abs(got["avg"].to_decimal() - mean) <= abs(mean) * Decimal("1e-30")
        else:
            assert got["avg"] is None

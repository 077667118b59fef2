"""Hypothesis-generated malformed documents mixed into valid traffic: nothing stalls."""

from __future__ import annotations

import math
import random
import warnings
from typing import Any

from bson import Decimal128
from hypothesis import strategies as st
from hypothesis.errors import NonInteractiveExampleWarning
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.mongo import Mongo
from streamer.settings import Settings
from tests.support.faults import check, score, size
from tests.support.model import Traffic
from tests.support.service import RunService, caught_up

COUNT = size(200, 1000)

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=5),
    st.just(math.nan),
    st.just(-math.inf),
    st.floats(-100, -0.01),
    st.just(Decimal128("NaN")),
    st.lists(st.integers(-1000, 1000), max_size=2),
)
bad_orders = st.one_of(
    st.fixed_dictionaries({"amount": st.integers(0, 100), "status": st.just("completed")}),
    st.fixed_dictionaries(
        {"user_id": st.just("mal"), "amount": junk, "status": st.just("completed")}
    ),
    st.fixed_dictionaries(
        {
            "user_id": st.just("mal"),
            "amount": st.integers(0, 9),
            "status": st.one_of(st.none(), st.integers(-9, 9), st.booleans()),
        }
    ),
    st.fixed_dictionaries(
        {
            "user_id": st.lists(st.integers(-1000, 1000), min_size=1, max_size=2),
            "amount": st.integers(0, 9),
            "status": st.just("pending"),
        }
    ),
)
bad_products = st.one_of(
    st.fixed_dictionaries(
        {
            "sku": st.just("S"),
            "name": st.just("N"),
            "stock": st.one_of(
                st.floats(0.1, 50).filter(lambda f: not f.is_integer()),
                st.text(max_size=3),
                st.none(),
                st.booleans(),
            ),
        }
    ),
    st.fixed_dictionaries({"name": st.just("N"), "stock": st.integers(0, 5)}),
    st.fixed_dictionaries({"sku": st.just("S"), "stock": st.integers(0, 5)}),
    st.fixed_dictionaries(
        {
            "sku": st.just("S"),
            "name": st.just("N"),
            "stock": st.integers(0, 5),
            "low_stock_threshold": st.one_of(st.integers(-9, -1), st.text(max_size=2)),
        }
    ),
)
malformed = st.one_of(
    bad_orders.map(lambda d: ("orders", d)), bad_products.map(lambda d: ("inventory", d))
)


def generate(count: int) -> list[tuple[str, dict[str, Any]]]:
    """``count`` documents drawn independently from the strategies.

    One ``@given`` example of a long list tends to repeat its simplest element, and a
    replay on failure would write into the same database; independent draws give a
    varied mix, and each failing document is named by its key in the assertion.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        return [malformed.example() for _ in range(count)]


async def test_malformed_documents_are_quarantined_and_the_rest_applied(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    mongo: Mongo,
    service: RunService,
) -> None:
    """Each malformed document gets one quarantine record; every valid event applies."""
    documents = generate(COUNT)
    traffic = Traffic(db, random.Random(23))
    rng = random.Random(29)
    async with service(settings):
        for i, (collection, doc) in enumerate(documents):
            for _ in range(rng.randrange(0, 3)):
                await traffic.step()
            await db[collection].insert_one(
                {"_id": f"bad-{i}", **doc}, bypass_document_validation=True
            )
        await caught_up(db, within_s=60)
    quarantined = await db.streamer_quarantine.distinct("key")
    assert sorted(quarantined) == sorted(f"bad-{i}" for i in range(len(documents)))
    assert await db.streamer_quarantine.count_documents({}) == len(documents)
    reasons = await db.streamer_quarantine.distinct("reason")
    print(f"\nquarantine reasons seen: {len(reasons)}: {sorted(reasons)}")
    traffic.events += len(documents)
    check(await score("malformed documents", db, mongo, traffic, len(documents)))

"""Update operators through Motor, with mongod's results and error codes."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Decimal128, Int64
from pymongo.errors import OperationFailure, WriteError


async def _after(db: Any, doc: dict[str, Any], update: Any, **kwargs: Any) -> dict[str, Any]:
    await db.c.insert_one({"_id": 1, **doc})
    await db.c.update_one({"_id": 1}, update, **kwargs)
    found: dict[str, Any] = await db.c.find_one({"_id": 1}, {"_id": 0})
    return found


@pytest.mark.parametrize(
    ("doc", "update", "expected"),
    [
        ({"a": {"b": 1}}, {"$set": {"a.c": 2}}, {"a": {"b": 1, "c": 2}}),
        ({"a": 1, "b": 2}, {"$unset": {"a": ""}}, {"b": 2}),
        ({"n": 2**31 - 1}, {"$inc": {"n": 1}}, {"n": Int64(2**31)}),
        ({"n": Decimal128("1.1")}, {"$inc": {"n": 1}}, {"n": Decimal128("2.1")}),
        ({"n": 3}, {"$mul": {"n": 1.5}}, {"n": 4.5}),
        ({"n": 5}, {"$min": {"n": 3}}, {"n": 3}),
        ({"n": 5}, {"$max": {"n": 3}}, {"n": 5}),
        ({"a": 1}, {"$rename": {"a": "b"}}, {"b": 1}),
        ({"xs": [1, 2]}, {"$push": {"xs": 3}}, {"xs": [1, 2, 3]}),
        (
            {"xs": [5, 1]},
            {"$push": {"xs": {"$each": [3, 9], "$sort": 1, "$slice": 3}}},
            {"xs": [1, 3, 5]},
        ),
        ({"xs": [2]}, {"$push": {"xs": {"$each": [1], "$position": 0}}}, {"xs": [1, 2]}),
        ({"xs": [1, 2]}, {"$addToSet": {"xs": {"$each": [2, 3]}}}, {"xs": [1, 2, 3]}),
        ({"xs": [1, 2, 3]}, {"$pop": {"xs": -1}}, {"xs": [2, 3]}),
        ({"xs": [1, 5, 9]}, {"$pull": {"xs": {"$gte": 5}}}, {"xs": [1]}),
        ({"xs": [{"k": 1}, {"k": 2}]}, {"$pull": {"xs": {"k": 2}}}, {"xs": [{"k": 1}]}),
        ({"xs": [1, 2, 1]}, {"$pullAll": {"xs": [1]}}, {"xs": [2]}),
        ({"xs": [1, 2]}, {"$inc": {"xs.$[]": 10}}, {"xs": [11, 12]}),
        (
            {"xs": [{"v": 1}, {"v": 2}]},
            [{"$set": {"n": {"$size": "$xs"}}}],
            {"xs": [{"v": 1}, {"v": 2}], "n": 2},
        ),
    ],
)
async def test_operator_results_match_mongod(
    db: Any, doc: dict[str, Any], update: Any, expected: dict[str, Any]
) -> None:
    assert await _after(db, doc, update) == expected


async def test_the_positional_operator_updates_the_first_matching_element(db: Any) -> None:
    await db.c.insert_one({"_id": 1, "items": [{"sku": "a", "n": 1}, {"sku": "b", "n": 1}]})
    await db.c.update_one({"_id": 1, "items.sku": "b"}, {"$inc": {"items.$.n": 5}})
    assert (await db.c.find_one({"_id": 1}))["items"] == [
        {"sku": "a", "n": 1},
        {"sku": "b", "n": 6},
    ]


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"$inc": {"s": 1}}, 14),
        ({"$set": {"a": 1}, "$inc": {"a": 1}}, 40),
        ({"$set": {}}, 9),
        ({"$set": {"_id": 2}}, 66),
        ({"$bogus": {"a": 1}}, 9),
    ],
)
async def test_invalid_updates_fail_with_mongods_codes(
    db: Any, update: dict[str, Any], code: int
) -> None:
    await db.c.insert_one({"_id": 1, "s": "text", "a": 0})
    with pytest.raises((WriteError, OperationFailure)) as info:
        await db.c.update_one({"_id": 1}, update)
    assert info.value.code == code

"""$toHashedIndexKey through Motor: mongod's exact hashes, in every place an expression goes,
and change streams split into partitions by the hashed document key.

The expected hashes are mongod's own test vectors: the manual's $toHashedIndexKey page
("string to hash") and src/mongo/db/hasher_test.cpp (BSONElementHasher, seed 0), whose
values the server checks at start-up. $toHashedIndexKey is documented from MongoDB 7.0.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex
from bson.datetime_ms import DatetimeMS
from pymongo.errors import OperationFailure

_DOCS_VECTOR = 763543691661428748  # manual, $toHashedIndexKey: "string to hash"
_LONG_MIN = -(2**63)

# (value, hash): hasher_test.cpp's HashIntOrLongOrDouble, HashString, HashObject, ...
VECTORS: list[tuple[str, Any, int]] = [
    ("docs' string", "string to hash", _DOCS_VECTOR),
    ("int 42", 42, -944302157085130861),
    ("double 42.123 truncated", 42.123, -944302157085130861),
    ("long 42", Int64(42), -944302157085130861),
    ("decimal 42", Decimal128("42"), -944302157085130861),
    ("int 0", 0, 4854801880128277513),
    ("double 0.456 truncated", 0.456, 4854801880128277513),
    ("double NaN as 0", float("nan"), 4854801880128277513),
    ("int 1", 1, 5902408780260971510),
    ("double 1.987 truncated", 1.987, 5902408780260971510),
    ("int -1", -1, 1140205862565771219),
    ("double -1.789 truncated toward zero", -1.789, 1140205862565771219),
    ("long -1", Int64(-1), 1140205862565771219),
    ("int32 min", -(2**31), 6165898260261354870),
    ("double int32 min", float(-(2**31)), 6165898260261354870),
    ("int32 max", 2**31 - 1, 1143184177162245883),
    ("long int32 max", Int64(2**31 - 1), 1143184177162245883),
    ("double max as long max", 1.7976931348623157e308, 921523596458303250),
    ("long max", Int64(2**63 - 1), 921523596458303250),
    ("double lowest as long min", -1.7976931348623157e308, 4532067210535695462),
    ("long min", Int64(_LONG_MIN), 4532067210535695462),
    ("string abc", "abc", 8478485326885698097),
    ("empty string", "", 2049396243249673340),
    ("embedded document", {"a": "abc", "b": Int64(123)}, 4771603801758380216),
    ("empty document", {}, 7980500913326740417),
    ("array", ["bar", "baz", "qux"], -2938911267422831539),
    ("empty array", [], 8849948234993459283),
    ("ObjectId", ObjectId("010203040506070809101112"), -5588663249627035708),
    ("zero ObjectId", ObjectId("000000000000000000000000"), -4293118519463489418),
    ("null", None, 2338878944348059895),
    ("true", True, 6405873908747105701),
    ("false", False, 6289544573401934092),
    ("date", DatetimeMS(0x5566778811223344), 4476222765095560467),
    ("epoch date", dt.datetime(1970, 1, 1, tzinfo=dt.UTC), -1178696894582842035),
    ("binary", Binary(bytes([0, 1, 2, 3, 4, 6]), 0), 7252465090394235301),
    ("custom binary", Binary(bytes([0, 1, 2, 3, 4, 6]), 128), 5736670452907618262),
    ("UUID binary", Binary(bytes(range(16)), 4), 6084661258071355978),
    ("MinKey", MinKey(), 7961148599568647290),
    ("MaxKey", MaxKey(), 5504842513779440750),
    ("regex", Regex("mongodb"), -7275792090268217043),
    ("regex with flags", Regex(".*", "i"), 7095855029187981886),
    ("code", Code("func f() { return 1; }"), 6861638109178014270),
    ("code with scope", Code("func f() { return 1; }", {"c": True}), 501342939894575968),
]


async def _hash_of(db: Any, doc: dict[str, Any]) -> Any:
    cursor = db.aggregate(
        [{"$documents": [doc]}, {"$project": {"_id": 0, "h": {"$toHashedIndexKey": "$v"}}}]
    )
    (result,) = await cursor.to_list(None)
    return result["h"]


@pytest.mark.parametrize(
    ("value", "expected"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS]
)
async def test_to_hashed_index_key_gives_mongods_hash(db: Any, value: Any, expected: int) -> None:
    result = await _hash_of(db, {"v": value})
    assert result == expected
    assert isinstance(result, Int64)  # a long, as mongod returns


async def test_to_hashed_index_key_of_a_missing_field_hashes_null(db: Any) -> None:
    assert await _hash_of(db, {}) == 2338878944348059895


async def test_to_hashed_index_key_works_in_match_expr_and_add_fields(db: Any) -> None:
    await db.c.insert_many([{"_id": i} for i in range(20)])
    partition = {"$mod": [{"$abs": {"$toHashedIndexKey": "$_id"}}, 4]}
    tagged = await db.c.aggregate([{"$addFields": {"p": partition}}]).to_list(None)
    by_partition = {p: [d["_id"] for d in tagged if d["p"] == p] for p in range(4)}
    assert sum(len(ids) for ids in by_partition.values()) == 20
    for p, ids in by_partition.items():
        found = await db.c.find({"$expr": {"$eq": [partition, p]}}).to_list(None)
        assert sorted(d["_id"] for d in found) == sorted(ids)
        assert all(isinstance(d["p"], Int64) for d in tagged)


async def test_abs_of_the_long_minimum_fails_with_28680(db: Any) -> None:
    pipeline = [{"$documents": [{"v": Int64(_LONG_MIN)}]}, {"$project": {"a": {"$abs": "$v"}}}]
    with pytest.raises(OperationFailure) as caught:
        await db.aggregate(pipeline).to_list(None)
    # A partition filter meets this only for a key whose hash is the long minimum.
    assert caught.value.code == 28680


async def test_abs_and_mod_keep_every_bit_of_a_long(db: Any) -> None:
    big = Int64(-(2**62) - 12345)  # more bits than a double's mantissa holds
    (result,) = await db.aggregate(
        [
            {"$documents": [{"v": big}]},
            {"$project": {"_id": 0, "a": {"$abs": "$v"}, "m": {"$mod": ["$v", 1000]}}},
        ]
    ).to_list(None)
    assert result == {"a": 2**62 + 12345, "m": -249}  # a double would give -192
    assert isinstance(result["a"], Int64) and isinstance(result["m"], Int64)


# -- change streams split into partitions ------------------------------------------------
P = 4


def _partition_pipeline(i: int) -> list[dict[str, Any]]:
    """The filter a partitioned reader opens its stream with (issue 19), then a $project."""
    hashed = {"$mod": [{"$abs": {"$toHashedIndexKey": "$documentKey._id"}}, P]}
    return [
        {
            "$match": {
                "$or": [
                    {"documentKey": {"$exists": False}},
                    {"$expr": {"$eq": [hashed, i]}},
                ]
            }
        },
        {"$project": {"operationType": 1, "documentKey": 1}},
    ]


async def _until_invalidate(stream: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while not events or events[-1]["operationType"] != "invalidate":
        events.append(await stream.next())
    return events


async def test_partitioned_streams_deliver_each_documents_events_to_exactly_one(db: Any) -> None:
    ids: list[Any] = [*range(30), *(f"user-{n}" for n in range(15))]
    ids += [ObjectId(f"{n:024x}") for n in range(15)]
    start = (await db.command({"find": "c", "filter": {}}))["operationTime"]
    await db.c.insert_many([{"_id": i, "n": 0} for i in ids])
    for i in ids[::3]:
        await db.c.update_one({"_id": i}, {"$inc": {"n": 1}})
    for i in ids[::5]:
        await db.c.delete_one({"_id": i})
    await db.c.drop()

    whole = db.c.watch(start_at_operation_time=start)
    parts = [db.c.watch(_partition_pipeline(i), start_at_operation_time=start) for i in range(P)]
    expected = await _until_invalidate(whole)
    received = [await _until_invalidate(stream) for stream in parts]
    for stream in [whole, *parts]:
        await stream.close()

    crud = [e for e in expected if "documentKey" in e]
    owners: dict[Any, set[int]] = {}
    for i, events in enumerate(received):
        for e in events:
            if "documentKey" in e:
                owners.setdefault(repr(e["documentKey"]["_id"]), set()).add(i)
        # In order: a partition's CRUD events are the whole stream's, filtered.
        mine = [e["_id"] for e in events if "documentKey" in e]
        assert mine == [e["_id"] for e in crud if repr(e["documentKey"]["_id"]) in _ids_of(events)]
        # drop and invalidate reach every partition, with the whole stream's tokens.
        assert [(e["operationType"], e["_id"]) for e in events if "documentKey" not in e] == [
            (e["operationType"], e["_id"]) for e in expected if "documentKey" not in e
        ]
    assert [e["operationType"] for e in expected if "documentKey" not in e] == [
        "drop",
        "invalidate",
    ]
    assert sum(1 for events in received for e in events if "documentKey" in e) == len(crud)
    assert all(len(parts_of) == 1 for parts_of in owners.values())
    assert len(owners) == len(ids)
    assert all(any("documentKey" in e for e in events) for events in received)


def _ids_of(events: list[dict[str, Any]]) -> set[str]:
    return {repr(e["documentKey"]["_id"]) for e in events if "documentKey" in e}

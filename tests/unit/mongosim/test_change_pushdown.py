"""documentKey predicates pushed to the oplog scan select exactly the events the whole
$match selects on built events, and each entry's hash is computed once."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Int64, ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st
from mongosim.change_events import command_event, crud_event
from mongosim.matching import compile_filter
from mongosim.oplog import OplogEntry

from mongosim import change_pushdown

TOKEN = {"_data": "00"}


def _partition(p: int, i: int) -> dict[str, Any]:
    hashed = {"$mod": [{"$abs": {"$toHashedIndexKey": "$documentKey._id"}}, p]}
    return {"$or": [{"documentKey": {"$exists": False}}, {"$expr": {"$eq": [hashed, i]}}]}


FILTERS: list[dict[str, Any]] = [
    *(_partition(p, i) for p in (1, 2, 4, 8) for i in range(p)),
    {**_partition(4, 1), "operationType": {"$in": ["insert", "drop"]}},
    {"$and": [_partition(3, 2), {"ns.coll": "c"}]},
    {"documentKey._id": {"$gt": 10}},
    {"documentKey": {"$exists": True}, "fullDocument.n": {"$gte": 1}},
    {"$nor": [{"documentKey._id": {"$type": "string"}}]},
    {"$expr": {"$eq": [{"$type": "$documentKey._id"}, "objectId"]}},
    {"$expr": {"$eq": ["$documentKey._id", "$fullDocument._id"]}},  # not pushable
]

ids = st.one_of(
    st.integers(-(2**31), 2**31 - 1),
    st.integers(-(2**63), 2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    st.dictionaries(st.sampled_from("abc"), st.integers(0, 9), max_size=2),
)


@st.composite
def entries(draw: st.DrawFn) -> OplogEntry:
    op = draw(st.sampled_from(["i", "u", "r", "d", "c"]))
    if op == "c":
        name = draw(st.sampled_from(["drop", "renameCollection", "dropDatabase"]))
        cmd: dict[str, Any] = {
            "drop": {"drop": "c"},
            "renameCollection": {"renameCollection": "db.c", "to": "db.d"},
            "dropDatabase": {"dropDatabase": 1},
        }[name]
        return OplogEntry(op="c", ns="db.$cmd" if name == "dropDatabase" else "db.c", cmd=cmd)
    key = {"_id": draw(ids)}
    doc = {**key, "n": draw(st.integers(0, 3))} if op != "d" else None
    return OplogEntry(op=op, ns="db.c", key=key, doc=doc, pre=doc)


def _event(entry: OplogEntry) -> dict[str, Any] | None:
    if entry.op == "c":
        return command_event(entry, TOKEN, False)
    return crud_event(entry, TOKEN, False)


@settings(max_examples=200, deadline=None)
@given(entry=entries(), spec=st.sampled_from(FILTERS))
def test_pushed_predicates_select_what_the_whole_match_selects(
    entry: OplogEntry, spec: dict[str, Any]
) -> None:
    event = _event(entry)
    assert event is not None
    pushdown = change_pushdown.split([{"$match": spec}, {"$project": {"n": 1}}])
    rest = [compile_filter(stage["$match"]) for stage in pushdown.stages if "$match" in stage]
    pushed = pushdown.admits(entry) and all(match(event) for match in rest)
    assert pushed == compile_filter(spec)(event)
    assert pushdown.stages[-1] == {"$project": {"n": 1}}


def test_the_partition_filter_is_pushed_whole_and_leaves_only_the_project() -> None:
    pushdown = change_pushdown.split([{"$match": _partition(8, 3)}, {"$project": {"n": 1}}])
    assert pushdown.matcher is not None and len(pushdown.memos) == 1
    assert pushdown.stages == [{"$project": {"n": 1}}]


@pytest.mark.parametrize(
    "stages",
    [
        [{"$project": {"n": 1}}, {"$match": {"documentKey._id": 1}}],  # after a reshape
        [{"$match": {"$expr": {"$eq": ["$$ROOT.documentKey._id", 1]}}}],
        [{"$match": {"$expr": {"$eq": [{"$getField": "documentKey"}, {"_id": 1}]}}}],
        [{"$match": {"fullDocument.n": 1}}],
    ],
)
def test_predicates_that_may_read_other_fields_stay_in_the_pipeline(
    stages: list[dict[str, Any]],
) -> None:
    pushdown = change_pushdown.split(stages)
    assert pushdown.matcher is None
    assert pushdown.stages == stages


def test_an_entrys_hash_is_computed_once_for_every_cursor() -> None:
    entry = OplogEntry(op="i", ns="db.c", key={"_id": "string to hash"}, doc={})
    cursors = [change_pushdown.split([{"$match": _partition(8, i)}]) for i in range(8)]
    assert all(len(c.memos) == 1 for c in cursors)
    assert len({c.memos[0][0] for c in cursors}) == 1  # one spelling, one memo field
    owner = 763543691661428748 % 8  # the manual's hash of "string to hash"
    assert [c.admits(entry) for c in cursors] == [i == owner for i in range(8)]
    assert entry.pushdown_doc is not None
    assert entry.pushdown_doc[cursors[0].memos[0][0]] == owner
    entry.key["_id"] = "changed"  # every cursor reads the memo from now on
    assert [c.admits(entry) for c in cursors] == [i == owner for i in range(8)]

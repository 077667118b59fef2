"""Sessions, transactions and retryable writes as the drivers' specs expect."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import WriteConcern
from pymongo.errors import OperationFailure, WriteConcernError


@asynccontextmanager
async def _private_client(uri: str) -> AsyncIterator[Any]:
    """A client of the test's own: a hand-set txnNumber must not leak into the shared
    client's pooled server sessions (their later writes would be TransactionTooOld)."""
    own: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    try:
        yield own
    finally:
        own.close()


def _fresh_txn_number() -> int:
    """A txnNumber above any the driver's pooled server session has used."""
    return 1_000_000 + uuid.uuid4().int % 1_000_000


async def test_a_committed_transaction_applies_every_write(client: Any, db: Any) -> None:
    await db.inventory.insert_one({"_id": "p1", "stock": 5})
    async with await client.start_session() as session, session.start_transaction():
        await db.inventory.update_one({"_id": "p1"}, {"$inc": {"stock": -2}}, session=session)
        await db.orders.insert_one({"_id": "o1", "qty": 2}, session=session)
    assert (await db.inventory.find_one({"_id": "p1"}))["stock"] == 3
    assert await db.orders.find_one({"_id": "o1"}) == {"_id": "o1", "qty": 2}


async def test_an_aborted_transaction_leaves_nothing_behind(client: Any, db: Any) -> None:
    await db.create_collection("orders")
    async with await client.start_session() as session:
        session.start_transaction()
        await db.orders.insert_one({"_id": "o1"}, session=session)
        await session.abort_transaction()
    assert await db.orders.count_documents({}) == 0


async def test_reads_inside_a_transaction_see_its_own_writes_but_not_others(
    client: Any, db: Any
) -> None:
    await db.c.insert_one({"_id": 1, "v": "before"})
    async with await client.start_session() as session, session.start_transaction():
        assert (await db.c.find_one({"_id": 1}, session=session))["v"] == "before"
        await db.c.insert_one({"_id": 2, "v": "mine"}, session=session)
        await db.c.update_one({"_id": 3}, {"$set": {"v": "outside"}}, upsert=True)
        await db.c.insert_one({"_id": 4, "v": "outside"})
        seen = {d["_id"]: d["v"] async for d in db.c.find({}, session=session)}
        assert seen == {1: "before", 2: "mine"}
        assert await db.c.find_one({"_id": 2}) is None


async def test_snapshot_reads_keep_the_old_version_of_a_document_changed_outside(
    client: Any, db: Any
) -> None:
    await db.c.insert_one({"_id": 1, "v": 1})
    async with await client.start_session() as session, session.start_transaction():
        await db.c.find_one({"_id": 2}, session=session)  # starts the snapshot
        await db.c.update_one({"_id": 1}, {"$set": {"v": 2}})
        assert (await db.c.find_one({"_id": 1}, session=session))["v"] == 1
        assert await db.c.count_documents({"v": 1}, session=session) == 1


async def test_two_transactions_writing_one_document_conflict_with_a_transient_label(
    client: Any, db: Any
) -> None:
    await db.c.insert_one({"_id": 1, "n": 0})
    s1 = await client.start_session()
    s2 = await client.start_session()
    try:
        s1.start_transaction()
        s2.start_transaction()
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=s1)
        with pytest.raises(OperationFailure) as info:
            await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=s2)
        assert info.value.code == 112
        assert info.value.has_error_label("TransientTransactionError")
        await s1.commit_transaction()
        await s2.abort_transaction()
    finally:
        await s1.end_session()
        await s2.end_session()
    assert (await db.c.find_one({"_id": 1}))["n"] == 1


async def test_with_transaction_retries_a_conflicting_transaction_to_success(
    client: Any, db: Any
) -> None:
    await db.c.insert_one({"_id": 1, "n": 0})

    async def bump(session: Any) -> None:
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}, session=session)
        await asyncio.sleep(0)  # let the other transaction interleave

    async def run() -> None:
        async with await client.start_session() as session:
            await session.with_transaction(bump)

    await asyncio.gather(*(run() for _ in range(5)))
    assert (await db.c.find_one({"_id": 1}))["n"] == 5


async def test_a_plain_write_waits_for_the_transaction_holding_the_document(
    client: Any, db: Any
) -> None:
    """Shown by the order of the changes, not by a pause: a plain write that did not wait
    would come first (n=1), or be lost under the commit (n=10 last)."""
    await db.c.insert_one({"_id": 1, "n": 0})
    async with db.c.watch() as stream:
        async with await client.start_session() as session:
            session.start_transaction()
            await db.c.update_one({"_id": 1}, {"$inc": {"n": 10}}, session=session)
            outside = asyncio.ensure_future(db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}))
            await session.commit_transaction()
            await outside
        changes = [await stream.next(), await stream.next()]
    assert [c["updateDescription"]["updatedFields"] for c in changes] == [{"n": 10}, {"n": 11}]
    assert "txnNumber" in changes[0] and "txnNumber" not in changes[1]
    assert (await db.c.find_one({"_id": 1}))["n"] == 11


async def test_committing_twice_is_idempotent_and_aborting_after_commit_fails(
    client: Any, db: Any
) -> None:
    await db.create_collection("c")
    async with await client.start_session() as session:
        session.start_transaction()
        await db.c.insert_one({"_id": 1}, session=session)
        await session.commit_transaction()
        await session.commit_transaction()  # the driver re-sends commitTransaction
        with pytest.raises(Exception, match=r"(?i)abort"):
            await session.abort_transaction()
    assert await db.c.count_documents({}) == 1


async def test_statements_of_an_unknown_transaction_fail_with_no_such_transaction(
    mongo_uri: str, db: Any
) -> None:
    async with _private_client(mongo_uri) as own, await own.start_session() as session:
        with pytest.raises(OperationFailure) as info:
            await own[db.name].command(
                {
                    "insert": "c",
                    "documents": [{"a": 1}],
                    "txnNumber": _fresh_txn_number(),
                    "autocommit": False,
                },
                session=session,
            )
    assert info.value.code == 251
    assert info.value.has_error_label("TransientTransactionError")


async def test_a_retried_write_with_the_same_txn_number_is_applied_once(
    mongo_uri: str, db: Any
) -> None:
    command = {
        "update": "c",
        "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}, "upsert": True}],
        "txnNumber": _fresh_txn_number(),
    }
    async with _private_client(mongo_uri) as own, await own.start_session() as session:
        first = await own[db.name].command(command, session=session)
        second = await own[db.name].command(command, session=session)
    assert first["n"] == second["n"] == 1
    assert (await db.c.find_one({"_id": 1}))["n"] == 1


async def test_majority_write_concern_is_accepted(db: Any) -> None:
    coll = db.get_collection("c", write_concern=WriteConcern("majority", wtimeout=1000))
    await coll.insert_one({"_id": 1})
    assert await coll.count_documents({}) == 1


async def test_a_transaction_may_move_a_unique_key_from_one_document_to_another(
    client: Any, db: Any
) -> None:
    """Unique checks see the transaction's own writes: resolve one holder, insert the next."""
    await db.alerts.create_index("p", unique=True, partialFilterExpression={"state": "open"})
    await db.alerts.insert_one({"_id": 1, "p": 7, "state": "open"})
    async with await client.start_session() as s, s.start_transaction():
        await db.alerts.update_one({"_id": 1}, {"$set": {"state": "resolved"}}, session=s)
        await db.alerts.insert_one({"_id": 2, "p": 7, "state": "open"}, session=s)
    assert await db.alerts.count_documents({"p": 7, "state": "open"}) == 1
    with pytest.raises(OperationFailure) as info:
        async with await client.start_session() as s, s.start_transaction():
            await db.alerts.insert_one({"_id": 3, "p": 8, "state": "open"}, session=s)
            await db.alerts.insert_one({"_id": 4, "p": 8, "state": "open"}, session=s)
    assert info.value.code == 11000


async def _free_and_take_p9_and_p10(db: Any, s: Any) -> None:
    """Within transaction ``s``: p 9 taken, freed (resolved), taken again and moved to
    10, then taken a third time: open keys 9 (_id 3) and 10 (_id 2)."""
    await db.alerts.insert_one({"_id": 1, "p": 9, "state": "open"}, session=s)
    await db.alerts.update_one({"_id": 1}, {"$set": {"state": "resolved"}}, session=s)
    await db.alerts.insert_one({"_id": 2, "p": 9, "state": "open"}, session=s)
    await db.alerts.update_one({"_id": 2}, {"$set": {"p": 10}}, session=s)
    await db.alerts.insert_one({"_id": 3, "p": 9, "state": "open"}, session=s)


async def test_unique_checks_follow_each_version_a_transaction_writes(client: Any, db: Any) -> None:
    """A key held by the transaction's own version is free again once that version
    changes or goes (update, key moved, delete), and taken by the version that now
    holds it; every step checked after the transaction's first unique check."""
    await db.alerts.create_index("p", unique=True, partialFilterExpression={"state": "open"})
    with pytest.raises(OperationFailure) as taken:
        async with await client.start_session() as s, s.start_transaction():
            await _free_and_take_p9_and_p10(db, s)
            await db.alerts.delete_one({"_id": 3}, session=s)
            await db.alerts.insert_one({"_id": 4, "p": 9, "state": "open"}, session=s)
            await db.alerts.insert_one({"_id": 5, "p": 10, "state": "open"}, session=s)
    # Only the last insert can clash on p: 10 (with _id 2's moved key).
    assert taken.value.code == 11000
    assert (taken.value.details or {}).get("keyValue") == {"p": 10}
    assert await db.alerts.count_documents({}) == 0
    async with await client.start_session() as s, s.start_transaction():
        await _free_and_take_p9_and_p10(db, s)
    open_keys = [d["p"] async for d in db.alerts.find({"state": "open"}).sort("p", 1)]
    assert open_keys == [9, 10]


async def test_a_unique_key_two_open_transactions_both_take_lets_only_one_commit(
    client: Any, db: Any
) -> None:
    """Two transactions inserting one unique key: the second fails with a transient
    WriteConflict (mongod at its insert, mongosim at its commit), and one holder stays."""
    await db.alerts.create_index("p", unique=True, partialFilterExpression={"state": "open"})
    async with await client.start_session() as a, await client.start_session() as b:
        a.start_transaction()
        await db.alerts.insert_one({"_id": 1, "p": 5, "state": "open"}, session=a)
        b.start_transaction()
        with pytest.raises(OperationFailure) as info:
            await db.alerts.insert_one({"_id": 2, "p": 5, "state": "open"}, session=b)
            await a.commit_transaction()
            await b.commit_transaction()
        assert info.value.code == 112
        assert info.value.has_error_label("TransientTransactionError")
        if a.in_transaction:
            await a.commit_transaction()
    assert [d["_id"] async for d in db.alerts.find({"p": 5})] == [1]


async def test_kill_all_sessions_aborts_a_transaction_left_open(client: Any, db: Any) -> None:
    """Drivers' spec runners call killAllSessions between tests, so a transaction left
    open by one test must not hold its documents against the next."""
    await db.c.insert_one({"_id": 1, "n": 0})
    async with await client.start_session() as session:
        session.start_transaction()
        await db.c.update_one({"_id": 1}, {"$inc": {"n": 10}}, session=session)
        await client.admin.command({"killAllSessions": []})
        await asyncio.wait_for(db.c.update_one({"_id": 1}, {"$inc": {"n": 1}}), timeout=5)
        with pytest.raises(OperationFailure) as info:
            await session.commit_transaction()
    assert info.value.code == 251
    assert (await db.c.find_one({"_id": 1}))["n"] == 1


async def test_a_write_concern_beyond_the_one_member_is_unsatisfiable(db: Any) -> None:
    """As mongod: the write is applied, then reported with writeConcernError 100."""
    coll = db.get_collection("c", write_concern=WriteConcern(w=2))
    with pytest.raises(WriteConcernError) as info:
        await coll.insert_one({"_id": 1})
    assert info.value.code == 100
    assert info.value.details is not None
    assert info.value.details["codeName"] == "UnsatisfiableWriteConcern"
    assert await db.c.count_documents({}) == 1
    tagged = db.get_collection("c", write_concern=WriteConcern(w="dc-east"))
    with pytest.raises(WriteConcernError) as unknown:
        await tagged.insert_one({"_id": 2})
    assert unknown.value.code == 79

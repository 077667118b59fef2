"""mongosim --members 3: a transaction with a read preference other than primary behaves as
on mongod. The drivers refuse it before sending anything ("read preference in a
transaction must be primary", the transactions specification); a transaction that still
reaches a secondary (a direct connection, with or without a ``$readPreference`` of its
own) fails there with 10107 NotWritablePrimary whatever its read preference, as mongod's
command dispatch refuses any command of a multi-document transaction on a secondary
(``jstests/replsets/transactions_only_allowed_on_primaries.js``).

These need a secondary, so they run against a private mongosim (skipped against
MONGODB_URI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference, monitoring
from pymongo.errors import InvalidOperation, NotPrimaryError

from tests.support.polling import eventually

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]


class _Commands(monitoring.CommandListener):
    """The names of the commands the driver sent (to show nothing left the client)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def rs_sim(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    async with private_mongosim(members=3, replication_delay_ms=5) as sim:
        yield sim


@pytest.mark.parametrize(
    "mode",
    [ReadPreference.SECONDARY, ReadPreference.SECONDARY_PREFERRED, ReadPreference.NEAREST],
    ids=lambda m: m.name,
)
async def test_the_driver_refuses_a_non_primary_read_preference_in_a_transaction(
    rs_sim: ThreadedMongoSim, mode: Any
) -> None:
    commands = _Commands()
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(
        rs_sim.replset.uri, event_listeners=[commands]
    )
    try:
        orders = client.app.orders
        await orders.insert_one({"_id": 1})
        async with await client.start_session() as session:
            session.start_transaction(read_preference=mode)
            with pytest.raises(
                InvalidOperation, match="read preference in a transaction must be primary"
            ):
                await orders.find_one({"_id": 1}, session=session)
            await session.abort_transaction()  # nothing started on the server: no command
        assert "find" not in commands.sent and "abortTransaction" not in commands.sent
    finally:
        client.close()


@pytest.mark.parametrize("explicit", [False, True], ids=["driver-default", "explicit-secondary"])
async def test_a_transaction_reaching_a_secondary_is_not_writable_primary(
    rs_sim: ThreadedMongoSim, explicit: bool
) -> None:
    """A direct connection to a secondary: the driver's own find, or a runCommand that
    carries ``$readPreference: secondary`` itself (the drivers pass it through)."""
    rs = rs_sim.replset
    primary: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs.uri)
    secondary: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs.uri_of(1))
    try:
        await primary.app.orders.insert_one({"_id": 1})
        on_secondary = secondary.app.get_collection(
            "orders", read_preference=ReadPreference.SECONDARY_PREFERRED
        )
        # Outside a transaction the secondary serves the read (once it has the write).
        await eventually(lambda: on_secondary.find_one({"_id": 1}), what="member 1 has it")
        async with await secondary.start_session() as session:
            session.start_transaction()
            with pytest.raises(NotPrimaryError) as raised:
                if explicit:
                    find = {"find": "orders", "$readPreference": {"mode": "secondary"}}
                    await secondary.app.command(find, session=session)
                else:
                    await secondary.app.orders.find_one({"_id": 1}, session=session)
            details = raised.value.details or {}
            assert (details.get("code"), details.get("errmsg")) == (10107, "not primary")
            assert "TransientTransactionError" in details.get("errorLabels", [])
    finally:
        primary.close()
        secondary.close()


async def test_the_primary_runs_a_transaction_whatever_read_preference_its_commands_carry(
    rs_sim: ThreadedMongoSim,
) -> None:
    """mongod's primary does not check ``$readPreference`` inside a transaction."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs_sim.replset.uri)
    try:
        await client.app.orders.insert_one({"_id": 1})
        async with await client.start_session() as session:
            session.start_transaction()
            find = {"find": "orders", "$readPreference": {"mode": "secondaryPreferred"}}
            reply = await client.app.command(find, session=session)
            assert reply["cursor"]["firstBatch"] == [{"_id": 1}]
            await client.app.orders.insert_one({"_id": 2}, session=session)
            await session.commit_transaction()
        assert await client.app.orders.count_documents({}) == 2
    finally:
        client.close()

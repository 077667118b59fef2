"""mongosim --members 3 with auth: users and roles are each member's own documents in
``admin.system.users``/``system.roles``, replicated through the oplog as mongod's are. A
user created on the primary authenticates (SCRAM) on the new primary after a stepdown,
reaches a lagging secondary only once it has replicated, is refused on a secondary
(NotWritablePrimary), one a deposed primary took alone is rolled back, and a member's
users survive its kill and restart (its journal).

They step members down and cut the network, so they run against a private mongosim only
(skipped against MONGODB_URI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from mongosim.replset import ReplicaSet
from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo.errors import NotPrimaryError, OperationFailure

from tests.support.polling import eventually

Start = Callable[..., AbstractAsyncContextManager[ThreadedMongoSim]]
ROOT = ("root", "r00t-secret")
APP = ("app", "app-secret")


def _creds(uri: str, user: tuple[str, str]) -> str:
    return uri.replace("mongodb://", f"mongodb://{user[0]}:{user[1]}@", 1)


def _client(uri: str, user: tuple[str, str], **options: Any) -> AsyncIOMotorClient[Any]:
    options.setdefault("serverSelectionTimeoutMS", 20_000)
    return AsyncIOMotorClient(_creds(uri, user), authMechanism="SCRAM-SHA-256", **options)


def _direct(rs: ReplicaSet, index: int, user: tuple[str, str]) -> AsyncIOMotorClient[Any]:
    return _client(rs.uri_of(index), user, serverSelectionTimeoutMS=5_000)


@pytest.fixture
async def rs_auth(private_mongosim: Start) -> AsyncIterator[ThreadedMongoSim]:
    """A secured three-member set whose root user (made through the localhost exception
    on the primary) every member has applied."""
    async with private_mongosim(members=3, replication_delay_ms=5, auth=True) as sim:
        rs = sim.replset
        anonymous: AsyncIOMotorClient[Any] = AsyncIOMotorClient(rs.uri)
        try:
            await anonymous.admin.command(
                {"createUser": ROOT[0], "pwd": ROOT[1], "roles": ["root"]}
            )
        finally:
            anonymous.close()
        for index in range(len(rs.members)):
            await eventually(
                lambda i=index: _authenticates(rs.uri_of(i), ROOT),  # type: ignore[misc]
                what=f"root on member {index}",
            )
        yield sim


async def _authenticates(uri: str, user: tuple[str, str]) -> bool:
    """Whether ``user`` passes SCRAM on the member(s) of ``uri``."""
    client = _client(uri, user, serverSelectionTimeoutMS=5_000)
    try:
        await client.admin.command("ping")  # a ping is sent once the handshake authenticated
    except OperationFailure as exc:
        if exc.code == 18:  # AuthenticationFailed: the user is not on that member (yet)
            return False
        raise
    finally:
        client.close()
    return True


async def test_a_user_created_on_the_primary_authenticates_on_the_new_primary_after_stepdown(
    rs_auth: ThreadedMongoSim,
) -> None:
    rs = rs_auth.replset
    root = _client(rs.uri, ROOT)
    try:
        await root.admin.command(
            {
                "createUser": APP[0],
                "pwd": APP[1],
                "roles": [{"role": "readWrite", "db": "app"}],
                "writeConcern": {"w": "majority"},
            }
        )
        await root.admin.command({"createRole": "auditor", "privileges": [], "roles": ["read"]})
        await root.admin.command("replSetStepDown", 60)
        new = await rs_auth.acall(rs.wait_for_primary(other_than=0))
        assert new != 0
        # The new primary's own admin.system.users holds the user: SCRAM succeeds there,
        # and its privileges (readWrite on app) let it write.
        assert await _authenticates(rs.uri_of(new), APP)
        app = _client(rs.uri, APP)
        try:
            await app.app.orders.insert_one({"_id": 1})
            host, port = rs.members[new].host.rsplit(":", 1)
            assert app.primary == (host, int(port))
        finally:
            app.close()
        roles = (await root.admin.command({"rolesInfo": "auditor"}))["roles"]
        assert [r["role"] for r in roles] == ["auditor"]
    finally:
        root.close()


async def test_a_user_created_while_a_secondary_lags_reaches_it_after_replication(
    rs_auth: ThreadedMongoSim,
) -> None:
    rs = rs_auth.replset
    root = _client(rs.uri, ROOT)
    lagging = _direct(rs, 2, ROOT)
    try:
        await rs_auth.acall(rs.partition([0, 1], [2]))  # member 2 replicates nothing
        await root.admin.command(
            {
                "createUser": APP[0],
                "pwd": APP[1],
                "roles": ["readWrite"],
                "writeConcern": {"w": "majority"},  # members 0 and 1
            }
        )
        assert await _authenticates(rs.uri_of(1), APP)
        assert not await _authenticates(rs.uri_of(2), APP)
        assert (await lagging.admin.command({"usersInfo": APP[0]}))["users"] == []
        await rs_auth.acall(rs.heal())
        await eventually(
            lambda: _authenticates(rs.uri_of(2), APP), what="the user replicated to member 2"
        )
        info = (await lagging.admin.command({"usersInfo": APP[0]}))["users"]
        assert [(u["user"], u["db"]) for u in info] == [(APP[0], "admin")]
    finally:
        root.close()
        lagging.close()


async def test_user_management_on_a_secondary_is_not_writable_primary(
    rs_auth: ThreadedMongoSim,
) -> None:
    secondary = _direct(rs_auth.replset, 1, ROOT)
    try:
        with pytest.raises(NotPrimaryError) as raised:
            await secondary.admin.command({"createUser": "x", "pwd": "y", "roles": []})
        assert (raised.value.details or {}).get("code") == 10107
    finally:
        secondary.close()


async def test_a_user_a_deposed_primary_created_alone_is_rolled_back(
    rs_auth: ThreadedMongoSim,
) -> None:
    rs = rs_auth.replset
    old = _direct(rs, 0, ROOT)
    try:
        await rs_auth.acall(rs.isolate(0))
        assert await rs_auth.acall(rs.elect()) in (1, 2)  # 0 has not stepped down yet
        await old.admin.command({"createUser": "lost", "pwd": "lost-pw", "roles": []})
        assert await _authenticates(rs.uri_of(0), ("lost", "lost-pw"))
        await rs_auth.acall(rs.heal())
        await eventually(lambda: _rbid_is(old, 2), what="member 0 rolled back (rbid bumped)")
        assert not await _authenticates(rs.uri_of(0), ("lost", "lost-pw"))
        assert (await old.admin.command({"usersInfo": "lost"}))["users"] == []
    finally:
        old.close()


async def _rbid_is(client: AsyncIOMotorClient[Any], rbid: int) -> bool:
    return bool((await client.admin.command("replSetGetRBID"))["rbid"] == rbid)


async def test_a_member_killed_and_restarted_keeps_its_users_from_its_journal(
    rs_auth: ThreadedMongoSim,
) -> None:
    rs = rs_auth.replset
    await rs_auth.acall(rs.isolate(2))  # what it has after the restart is its own
    await rs_auth.acall(rs.kill(2))  # as SIGKILL: its data dir is all that survives
    await rs_auth.acall(rs.restart(2))
    assert await _authenticates(rs.uri_of(2), ROOT)

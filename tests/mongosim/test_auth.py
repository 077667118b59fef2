"""mongosim with ``auth=True``: SCRAM through the real drivers, users, roles, privileges."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from bson import Int64
from mongosim.auth import Auth, make_connection_auth
from mongosim.server import COMMANDS  # importing the server registers every command
from mongosim.users import Catalog
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

Sim = Callable[..., AbstractAsyncContextManager[Any]]
ROOT = ("root", "r00t-secret")


def _with_user(uri: str, user: str, password: str, **options: Any) -> str:
    return uri.replace("mongodb://", f"mongodb://{user}:{password}@", 1)


@asynccontextmanager
async def _client(uri: str, driver: str = "motor", **options: Any) -> AsyncIterator[Any]:
    options.setdefault("serverSelectionTimeoutMS", 5000)
    if driver == "motor":
        motor: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri, **options)
        try:
            yield motor
        finally:
            motor.close()
    else:
        client: AsyncMongoClient[Any] = AsyncMongoClient(uri, **options)
        try:
            yield client
        finally:
            await client.close()


@asynccontextmanager
async def _auth_sim(private_mongosim: Sim, **options: Any) -> AsyncIterator[Any]:
    """A mongosim with auth on and a root user created through the localhost exception."""
    async with private_mongosim(auth=True, **options) as sim:
        async with _client(sim.uri) as anonymous:
            await anonymous.admin.command(
                {"createUser": ROOT[0], "pwd": ROOT[1], "roles": ["root"]}
            )
        yield sim


@pytest.mark.parametrize("driver", ["motor", "pymongo"])
@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-1", None])
async def test_the_drivers_authenticate_with_scram(
    private_mongosim: Sim, driver: str, mechanism: str | None
) -> None:
    """Each driver logs in with either mechanism, or negotiates one (saslSupportedMechs)."""
    async with _auth_sim(private_mongosim) as sim:
        extra = {"authMechanism": mechanism} if mechanism else {}
        async with _client(_with_user(sim.uri, *ROOT), driver, **extra) as root:
            await root.app.orders.insert_one({"_id": 1})
            status = await root.admin.command("connectionStatus")
    assert status["authInfo"]["authenticatedUsers"] == [{"user": "root", "db": "admin"}]


async def test_a_wrong_password_fails_with_authentication_failed(private_mongosim: Sim) -> None:
    """Code 18, mongod's message, and no command runs."""
    async with (
        _auth_sim(private_mongosim) as sim,
        _client(_with_user(sim.uri, "root", "wrong")) as bad,
    ):
        with pytest.raises(OperationFailure) as info:
            await bad.admin.command("ping")
    assert info.value.code == 18 and "Authentication failed." in str(info.value)


async def test_commands_need_authentication_except_the_handshake_ones(
    private_mongosim: Sim,
) -> None:
    """hello/ping/buildInfo run anonymously; find says it requires authentication (13)."""
    async with _auth_sim(private_mongosim) as sim, _client(sim.uri) as anonymous:
        await anonymous.admin.command("ping")
        await anonymous.admin.command("buildInfo")
        with pytest.raises(OperationFailure) as info:
            await anonymous.app.orders.find_one({})
        with pytest.raises(OperationFailure) as again:
            await anonymous.admin.command({"createUser": "second", "pwd": "x", "roles": []})
    assert info.value.code == 13 and info.value.details["codeName"] == "Unauthorized"
    assert info.value.details["errmsg"] == "Command find requires authentication"
    assert again.value.code == 13  # the localhost exception closed with the first user


async def test_a_role_grants_exactly_its_actions(private_mongosim: Sim) -> None:
    """A custom role allows find on one collection; insert there and find elsewhere fail
    with mongod's "not authorized on <db> to execute command { ... }"."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        await root.admin.command(
            {
                "createRole": "reader",
                "privileges": [
                    {"resource": {"db": "app", "collection": "orders"}, "actions": ["find"]}
                ],
                "roles": [],
            }
        )
        await root.admin.command(
            {"createUser": "svc", "pwd": "pw", "roles": [{"role": "reader", "db": "admin"}]}
        )
        async with _client(_with_user(sim.uri, "svc", "pw")) as svc:
            assert await svc.app.orders.find_one({}) is None
            with pytest.raises(OperationFailure) as insert:
                await svc.app.orders.insert_one({"_id": 1})
            with pytest.raises(OperationFailure) as other:
                await svc.app.other.find_one({})
    assert insert.value.code == 13
    message = other.value.details["errmsg"]
    assert message.startswith('not authorized on app to execute command { find: "other", ')
    assert message.endswith('$db: "app" }')


async def test_built_in_roles_and_user_management(private_mongosim: Sim) -> None:
    """read/readWrite on a database; grant, revoke, usersInfo, rolesInfo, update, drop."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        await root.app.command({"createUser": "u", "pwd": "p1", "roles": ["read"]})
        info = await root.app.command({"usersInfo": "u"})
        assert info["users"][0]["roles"] == [{"role": "read", "db": "app"}]
        assert info["users"][0]["mechanisms"] == ["SCRAM-SHA-1", "SCRAM-SHA-256"]
        assert "credentials" not in info["users"][0]
        uri = sim.uri.replace("/?", "/app?")
        async with _client(_with_user(uri, "u", "p1")) as user:
            await user.app.c.find_one({})
            with pytest.raises(OperationFailure):
                await user.app.c.insert_one({})
        await root.app.command({"grantRolesToUser": "u", "roles": ["readWrite"]})
        async with _client(_with_user(uri, "u", "p1")) as user:
            await user.app.c.insert_one({})
        await root.app.command({"revokeRolesFromUser": "u", "roles": ["readWrite"]})
        await root.app.command({"updateUser": "u", "pwd": "p2"})
        async with _client(_with_user(uri, "u", "p2")) as user:
            with pytest.raises(OperationFailure):
                await user.app.c.insert_one({})
        roles = await root.app.command({"rolesInfo": "readWrite", "showPrivileges": True})
        assert roles["roles"][0]["isBuiltin"] is True
        assert "insert" in roles["roles"][0]["privileges"][0]["actions"]
        await root.app.command({"dropUser": "u"})
        with pytest.raises(OperationFailure) as gone:
            await root.app.command({"dropUser": "u"})
        with pytest.raises(OperationFailure) as no_role:
            await root.app.command({"createUser": "v", "pwd": "x", "roles": ["nope"]})
    assert gone.value.code == 11 and no_role.value.code == 31


async def test_users_may_kill_only_their_own_sessions(private_mongosim: Sim) -> None:
    """killSessions on one's own session works; on another user's it is Unauthorized."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        for name in ("a", "b"):
            await root.admin.command({"createUser": name, "pwd": "pw", "roles": [
                {"role": "readWrite", "db": "app"}]})  # fmt: skip
        async with (
            _client(_with_user(sim.uri, "a", "pw")) as a,
            _client(_with_user(sim.uri, "b", "pw")) as b,
            await a.start_session() as session,
        ):
            await a.app.c.find_one({}, session=session)
            lsid = session.session_id
            with pytest.raises(OperationFailure) as info:
                await b.admin.command({"killSessions": [lsid]})
            await a.admin.command({"killSessions": [lsid]})
    assert info.value.code == 13


async def _two_readers(root: Any) -> None:
    await root.app.c.insert_many([{"_id": i} for i in range(3)])
    for name in ("a", "b"):
        await root.admin.command(
            {
                "createRole": f"{name}-reader",
                "privileges": [{"resource": {"db": "app", "collection": "c"}, "actions": ["find"]}],
                "roles": [],
            }
        )
        await root.admin.command({"createUser": name, "pwd": "pw", "roles": [
            {"role": f"{name}-reader", "db": "admin"}]})  # fmt: skip


async def test_a_cursor_is_read_on_only_by_the_users_that_opened_it(
    private_mongosim: Sim,
) -> None:
    """getMore on another user's cursor is Unauthorized, with mongod's wording, even with
    the same privileges (getmore_cmd.cpp); its owner reads on."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        await _two_readers(root)
        async with (
            _client(_with_user(sim.uri, "a", "pw")) as a,
            _client(_with_user(sim.uri, "b", "pw")) as b,
        ):
            first = await a.app.command({"find": "c", "batchSize": 1})
            cursor_id = first["cursor"]["id"]
            with pytest.raises(OperationFailure) as other:
                await b.app.command({"getMore": Int64(cursor_id), "collection": "c"})
            more = await a.app.command({"getMore": Int64(cursor_id), "collection": "c"})
    assert other.value.code == 13
    assert other.value.details["errmsg"] == (
        f"cursor id {cursor_id} was not created by the authenticated user"
    )
    assert [d["_id"] for d in more["cursor"]["nextBatch"]] == [1, 2]


async def test_a_cursor_is_read_on_only_while_its_owner_keeps_the_privilege(
    private_mongosim: Sim,
) -> None:
    """The privileges of the command that opened the cursor are checked again on each
    getMore: a revoked find ends the read."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        await _two_readers(root)
        async with _client(_with_user(sim.uri, "a", "pw")) as a:
            first = await a.app.command({"find": "c", "batchSize": 1})
            cursor_id = first["cursor"]["id"]
            await root.admin.command({"updateRole": "a-reader", "privileges": []})
            with pytest.raises(OperationFailure) as revoked:
                await a.app.command({"getMore": Int64(cursor_id), "collection": "c"})
    assert revoked.value.code == 13
    assert revoked.value.details["errmsg"] == (
        f"not authorized for getMore with cursor id {cursor_id}"
    )


async def test_another_users_cursor_is_killed_only_with_kill_any_cursor(
    private_mongosim: Sim,
) -> None:
    """killCursors: one's own cursors, or anyone's with killAnyCursor on the namespace
    (root has it); else "not authorized to kill cursor on <ns>" (authorization_checks.cpp)."""
    async with _auth_sim(private_mongosim) as sim, _client(_with_user(sim.uri, *ROOT)) as root:
        await _two_readers(root)
        async with (
            _client(_with_user(sim.uri, "a", "pw")) as a,
            _client(_with_user(sim.uri, "b", "pw")) as b,
        ):
            ids = [(await a.app.command({"find": "c", "batchSize": 1}))["cursor"]["id"]
                   for _ in range(2)]  # fmt: skip
            with pytest.raises(OperationFailure) as other:
                await b.app.command({"killCursors": "c", "cursors": [Int64(ids[0])]})
            own = await a.app.command({"killCursors": "c", "cursors": [Int64(ids[0])]})
            anyone = await root.app.command({"killCursors": "c", "cursors": [Int64(ids[1])]})
    assert other.value.code == 13
    assert other.value.details["errmsg"] == "not authorized to kill cursor on app.c"
    assert own["cursorsKilled"] == [ids[0]] and anyone["cursorsKilled"] == [ids[1]]


async def test_users_and_roles_survive_a_restart_on_the_data_dir(
    private_mongosim: Sim, tmp_path: Path
) -> None:
    """With a data dir the catalog is kept: the same password works after a restart."""
    async with (
        _auth_sim(private_mongosim, data_dir=tmp_path) as sim,
        _client(_with_user(sim.uri, *ROOT)) as root,
    ):
        await root.admin.command({"createRole": "r", "privileges": [], "roles": ["read"]})
    async with (
        private_mongosim(auth=True, data_dir=tmp_path) as sim,
        _client(_with_user(sim.uri, *ROOT)) as root,
    ):
        roles = await root.admin.command({"rolesInfo": "r"})
    assert roles["roles"][0]["inheritedRoles"] == [{"role": "read", "db": "admin"}]


def test_hello_answers_speculative_authentication_and_supported_mechanisms() -> None:
    """The first SCRAM step rides on hello, as drivers send it (Authentication spec)."""
    catalog = Catalog()
    catalog.add_user("admin", "u", "pw", [], ["SCRAM-SHA-256"])
    auth = Auth(catalog, enabled=True)
    conn = make_connection_auth(("127.0.0.1", 1))
    reply: dict[str, Any] = {}
    payload = b"n,,n=u,r=abcdefghijklmnop"
    speculative = {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": payload, "db": "admin"}
    hello = {"hello": 1, "saslSupportedMechs": "admin.u", "speculativeAuthenticate": speculative}
    auth.decorate_hello(hello, reply, conn)
    assert reply["saslSupportedMechs"] == ["SCRAM-SHA-256"]
    assert reply["speculativeAuthenticate"]["done"] is False
    assert bytes(reply["speculativeAuthenticate"]["payload"]).startswith(b"r=abcdefghijklmnop")
    unknown: dict[str, Any] = {}
    auth.decorate_hello({"hello": 1, "saslSupportedMechs": "admin.x"}, unknown, conn)
    assert "saslSupportedMechs" not in unknown


def test_the_localhost_exception_needs_a_loopback_peer() -> None:
    """From another host, even the first user cannot be created anonymously."""
    auth = Auth(Catalog(), enabled=True)
    remote = make_connection_auth(("10.0.0.5", 4000))
    create_user = COMMANDS.get("createUser")
    assert create_user is not None
    with pytest.raises(Exception, match="requires authentication"):
        auth.authorize(
            create_user,
            "createUser",
            "admin",
            {"createUser": "x", "pwd": "y", "roles": []},
            remote,
        )
    assert socket.gethostname()  # the loopback case is covered through the drivers above

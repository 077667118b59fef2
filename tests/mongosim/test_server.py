"""The server layer: replica-set identity, wire details, fail points, step-down, CLI."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from typing import Any

import bson
import crc32c
import pytest
from bson import Timestamp
from mongosim.process import MongoSimProcess
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import monitoring
from pymongo.errors import AutoReconnect, NetworkTimeout, NotPrimaryError, OperationFailure

from tests.support.polling import eventually


async def test_hello_answers_as_the_primary_of_the_named_set(client: Any) -> None:
    hello = await client.admin.command("hello")
    assert hello["isWritablePrimary"] is True and hello["secondary"] is False
    assert hello["setName"] and hello["primary"] == hello["me"]
    assert hello["hosts"] == [hello["me"]]
    assert {"processId", "counter"} <= set(hello["topologyVersion"])
    assert hello["logicalSessionTimeoutMinutes"] == 30
    assert "electionId" in hello and "setVersion" in hello
    assert hello["maxWireVersion"] >= 17


async def test_every_reply_carries_cluster_time_and_operation_time(client: Any, db: Any) -> None:
    reply = await db.command({"insert": "c", "documents": [{"_id": 1}]})
    assert isinstance(reply["operationTime"], Timestamp)
    assert isinstance(reply["$clusterTime"]["clusterTime"], Timestamp)
    with pytest.raises(OperationFailure) as info:
        await db.command({"noSuchCommand": 1})
    assert isinstance(info.value.details["operationTime"], Timestamp)


async def test_build_info_and_parameters_answer_as_mongod(client: Any) -> None:
    info = await client.admin.command("buildInfo")
    assert info["versionArray"][:2] == [int(p) for p in info["version"].split(".")[:2]]
    params = await client.admin.command({"getParameter": "*"})
    assert "featureCompatibilityVersion" in params
    status = await client.admin.command("serverStatus")
    assert status["process"] in ("mongod", "mongos") and "uptime" in status


def _raw_roundtrip(uri: str, message: bytes) -> bytes:
    host, port = uri.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(message)
        header = sock.recv(16, socket.MSG_WAITALL)
        length = struct.unpack("<i", header[:4])[0]
        return header + sock.recv(length - 16, socket.MSG_WAITALL)


@pytest.fixture
def own_server(private_mongosim: Any) -> Any:
    return private_mongosim


async def test_the_legacy_op_query_handshake_gets_an_op_reply(own_server: Any) -> None:
    async with own_server() as sim:
        query = bson.encode({"isMaster": 1})
        body = struct.pack("<i", 0) + b"admin.$cmd\x00" + struct.pack("<ii", 0, -1) + query
        message = struct.pack("<iiii", 16 + len(body), 7, 0, 2004) + body
        reply = await asyncio.to_thread(_raw_roundtrip, sim.uri, message)
    _length, _request_id, response_to, op_code = struct.unpack("<iiii", reply[:16])
    assert (response_to, op_code) == (7, 1)
    document = bson.decode(reply[16 + 20 :])
    assert document["ismaster"] is True and document["ok"] == 1.0


async def test_a_checksummed_op_msg_is_accepted_and_answered_with_a_checksum(
    own_server: Any,
) -> None:
    async with own_server() as sim:
        body = struct.pack("<I", 1) + b"\x00" + bson.encode({"ping": 1, "$db": "admin"})
        header = struct.pack("<iiii", 16 + len(body) + 4, 9, 0, 2013)
        message = header + body + struct.pack("<I", crc32c.crc32c(header + body))
        reply = await asyncio.to_thread(_raw_roundtrip, sim.uri, message)
    flags = struct.unpack("<I", reply[16:20])[0]
    assert flags & 1
    assert struct.unpack("<I", reply[-4:])[0] == crc32c.crc32c(reply[:-4])
    assert bson.decode(reply[21:-4])["ok"] == 1.0


async def test_fail_command_fires_the_configured_times_with_its_code_and_labels(
    db: Any, fail_point: Any
) -> None:
    spec = {
        "mode": {"times": 2},
        "data": {"failCommands": ["find"], "errorCode": 50, "errorLabels": ["CustomLabel"]},
    }
    async with fail_point(spec):
        for _ in range(2):
            with pytest.raises(OperationFailure) as info:
                await db.command({"find": "c"})
            assert info.value.code == 50
            assert info.value.details["errorLabels"] == ["CustomLabel"]
        await db.command({"find": "c"})


async def test_fail_command_skip_lets_the_first_calls_through(db: Any, fail_point: Any) -> None:
    async with fail_point(
        {"mode": {"skip": 1}, "data": {"failCommands": ["count"], "errorCode": 2}}
    ):
        await db.command({"count": "c"})
        with pytest.raises(OperationFailure):
            await db.command({"count": "c"})


async def test_retryable_write_errors_get_the_retryable_label_and_are_retried(
    db: Any, fail_point: Any
) -> None:
    async with fail_point(
        {"mode": {"times": 1}, "data": {"failCommands": ["insert"], "errorCode": 189}}
    ):
        await db.c.insert_one({"_id": 1})  # the driver retries once
    assert await db.c.count_documents({}) == 1


async def test_close_connection_surfaces_as_a_network_error(db: Any, fail_point: Any) -> None:
    async with fail_point(
        {"mode": {"times": 1}, "data": {"failCommands": ["count"], "closeConnection": True}}
    ):
        with pytest.raises(AutoReconnect):
            await db.command({"count": "c"})


async def test_block_connection_beyond_socket_timeout_is_a_network_timeout(
    mongo_uri: str, fail_point: Any
) -> None:
    own: AsyncIOMotorClient[Any] = AsyncIOMotorClient(mongo_uri, socketTimeoutMS=200)
    try:
        async with fail_point(
            {
                "mode": {"times": 1},
                "data": {"failCommands": ["count"], "blockConnection": True, "blockTimeMS": 600},
            }
        ):
            with pytest.raises(NetworkTimeout):
                await own.x.command({"count": "c"})
    finally:
        await asyncio.to_thread(own.close)


async def test_app_name_restricts_a_fail_point_to_one_client(
    mongo_uri: str, db: Any, fail_point: Any
) -> None:
    own: AsyncIOMotorClient[Any] = AsyncIOMotorClient(mongo_uri, appName="victim")
    try:
        async with fail_point(
            {
                "mode": "alwaysOn",
                "data": {"failCommands": ["count"], "errorCode": 2, "appName": "victim"},
            }
        ):
            await db.command({"count": "c"})
            with pytest.raises(OperationFailure):
                await own[db.name].command({"count": "c"})
    finally:
        await asyncio.to_thread(own.close)


async def test_a_server_without_test_commands_refuses_fail_points(own_server: Any) -> None:
    async with own_server(enable_test_commands=False) as sim:
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        try:
            with pytest.raises(OperationFailure) as info:
                await client.admin.command({"configureFailPoint": "failCommand", "mode": "off"})
            assert info.value.code == 59
        finally:
            await asyncio.to_thread(client.close)


class _Topologies(monitoring.ServerListener):
    def __init__(self) -> None:
        self.types: list[str] = []

    def opened(self, event: Any) -> None:
        pass

    def closed(self, event: Any) -> None:
        pass

    def description_changed(self, event: Any) -> None:
        self.types.append(event.new_description.server_type_name)


async def test_step_down_refuses_writes_until_the_node_is_re_elected(own_server: Any) -> None:
    async with own_server() as sim:
        listener = _Topologies()
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(
            sim.uri, event_listeners=[listener], serverSelectionTimeoutMS=10000
        )
        direct: AsyncIOMotorClient[Any] = AsyncIOMotorClient(
            sim.uri.split("?")[0] + "?directConnection=true", retryWrites=False
        )
        try:
            before = (await client.admin.command("hello"))["topologyVersion"]["counter"]
            await client.admin.command({"replSetStepDown": 2})
            with pytest.raises(NotPrimaryError) as info:
                await direct.db.c.insert_one({"_id": 1})
            assert info.value.details["code"] == 10107
            await client.db.c.insert_one({"_id": 2})  # waits for the re-elected primary
            after = (await client.admin.command("hello"))["topologyVersion"]["counter"]
            assert after >= before + 2
            # SDAM events are published from a background thread: poll with a deadline.
            await eventually(
                lambda: listener.types[-1:] == ["RSPrimary"],
                what="the listener's last topology: a primary again",
                within_s=10,
                detail=lambda: listener.types,
            )
            assert "RSSecondary" in listener.types
        finally:
            await asyncio.to_thread(client.close)
            await asyncio.to_thread(direct.close)


async def test_the_cli_prints_one_ready_line_and_exits_zero_on_sigterm(
    private_mongosim: Any,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mongosim",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    assert line.startswith("mongosim ready mongodb://127.0.0.1:")
    assert line.rstrip().endswith("/?replicaSet=rs0")
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert await proc.stdout.read() == b""


async def test_a_killed_process_restarts_on_the_same_port(private_mongosim: Any) -> None:
    proc = MongoSimProcess()
    await proc.start()
    try:
        port = proc.port
        proc.kill()
        await proc.restart()
        assert proc.port == port
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(proc.uri)
        assert (await client.admin.command("ping"))["ok"] == 1.0
        await asyncio.to_thread(client.close)
    finally:
        assert await proc.stop() == 0

"""Fallback minimal server (only used if the server helper fails)."""
from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import os
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from bson.objectid import ObjectId

from .engine import CommandContext, Engine
from .errors import MongoError
from .wire import ProtocolError, decode_request, encode_reply, parse_header

_ids = itertools.count(1)


class Topology:
    def __init__(self, host: str, port: int, replset: str) -> None:
        self.host, self.port, self.replset = host, port, replset
        self.process_id = ObjectId()
        self.counter = 0
        self.election_id = ObjectId()
        self.changed = asyncio.Event()

    @property
    def me(self) -> str:
        return f"{self.host}:{self.port}"

    def hello(self, engine: Engine, conn_id: int, legacy: bool) -> dict[str, Any]:
        ts = engine.cluster_time()
        now = _dt.datetime.now(_dt.UTC)
        reply: dict[str, Any] = {
            "topologyVersion": {"processId": self.process_id, "counter": Int64(self.counter)},
            "hosts": [self.me], "setName": self.replset, "setVersion": 1,
            ("ismaster" if legacy else "isWritablePrimary"): True, "secondary": False,
            "primary": self.me, "me": self.me, "electionId": self.election_id,
            "lastWrite": {"opTime": {"ts": ts, "t": Int64(1)}, "lastWriteDate": now,
                          "majorityOpTime": {"ts": ts, "t": Int64(1)}, "majorityWriteDate": now},
            "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000,
            "maxWriteBatchSize": 100_000, "localTime": now, "logicalSessionTimeoutMinutes": 30,
            "connectionId": conn_id, "minWireVersion": 0, "maxWireVersion": 21, "readOnly": False,
            "helloOk": True,
        }
        return reply


class Server:
    def __init__(self, engine: Engine, topology: Topology) -> None:
        self.engine, self.topology = engine, topology

    async def handle(self, db: str, cmd: dict[str, Any], ctx: CommandContext, legacy: bool) -> dict[str, Any]:
        name = next(iter(cmd), "")
        lname = name.lower()
        try:
            if lname in ("hello", "ismaster"):
                if "topologyVersion" in cmd and "maxAwaitTimeMS" in cmd:
                    try:
                        await asyncio.wait_for(self.topology.changed.wait(), cmd["maxAwaitTimeMS"] / 1000)
                    except TimeoutError:
                        pass
                reply = self.topology.hello(self.engine, ctx.connection_id, legacy or lname == "ismaster")
            elif lname == "ping":
                reply = {}
            elif lname == "buildinfo":
                reply = {"version": "7.0.12", "versionArray": [7, 0, 12, 0], "gitVersion": "mongosim",
                         "bits": 64, "maxBsonObjectSize": 16 * 1024 * 1024, "modules": [],
                         "storageEngines": ["mongosim"]}
            elif lname == "getparameter":
                reply = {"enableTestCommands": True, "featureCompatibilityVersion": {"version": "7.0"}}
            else:
                reply = await self.engine.run_command(db, cmd, ctx)
            reply.setdefault("ok", 1.0)
        except MongoError as exc:
            reply = exc.to_reply()
        except Exception as exc:  # noqa: BLE001
            reply = MongoError(1, f"{type(exc).__name__}: {exc}").to_reply()
        ts = ctx.operation_time or self.engine.cluster_time()
        reply["$clusterTime"] = {"clusterTime": self.engine.cluster_time(),
                                 "signature": {"hash": Binary(b"\0" * 20, 0), "keyId": Int64(0)}}
        reply["operationTime"] = ts
        return reply


class _Protocol(asyncio.Protocol):
    def __init__(self, server: Server, live: set[_Protocol]) -> None:
        self.server = server
        self.live = live
        self.buf = bytearray()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.conn_id = next(_ids)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.live.add(self)
        self.task = asyncio.get_running_loop().create_task(self.run())

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        if self.task:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 16:
            header = parse_header(self.buf[:16])
            if len(self.buf) < header.length:
                break
            body = bytes(self.buf[16:header.length])
            del self.buf[:header.length]
            self.queue.put_nowait((header, body))

    async def run(self) -> None:
        while True:
            header, body = await self.queue.get()
            try:
                req = decode_request(header, body)
            except ProtocolError:
                assert self.transport
                self.transport.close()
                return
            ctx = CommandContext(self.conn_id, None)
            reply = await self.server.handle(req.db, req.command, ctx, req.legacy)
            if not req.more_to_come and self.transport and not self.transport.is_closing():
                self.transport.write(encode_reply(req, reply, request_id=next(_ids)))


class MongoSim:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, replset: str = "rs0",
                 oplog_size: int = 100_000, ttl_monitor_interval: float = 60.0,
                 data_dir: Any = None, enable_test_commands: bool = True) -> None:
        self.host, self.port, self.replset = host, port, replset
        self.engine = Engine(oplog_size=oplog_size, data_dir=data_dir,
                             ttl_monitor_interval=ttl_monitor_interval)
        self._server: asyncio.base_events.Server | None = None
        self._live: set[_Protocol] = set()

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/?replicaSet={self.replset}"

    async def start(self) -> None:
        await self.engine.start()
        loop = asyncio.get_running_loop()
        topology = Topology(self.host, self.port, self.replset)
        server = Server(self.engine, topology)
        self._server = await loop.create_server(lambda: _Protocol(server, self._live), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        topology.port = self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for proto in list(self._live):
            if proto.transport is not None:
                proto.transport.abort()
            if proto.task is not None:
                proto.task.cancel()
        await asyncio.sleep(0)
        await self.engine.close()

    async def __aenter__(self) -> "MongoSim":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

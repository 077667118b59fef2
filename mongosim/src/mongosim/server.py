"""The TCP server: framing, dispatch, fail points, labels and reply decoration.

One ``asyncio.Protocol`` per connection frames messages; a task per connection runs its
commands in order (a getMore waiting for events blocks only its own connection). Every
reply carries ``$clusterTime`` and ``operationTime``, as a replica-set member's does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from bson.timestamp import Timestamp

from . import (
    commands_catalog,
    commands_read,
    commands_txn,
    commands_write,
    explain,
    labels,
    user_commands,
)
from .auth import Auth, make_connection_auth
from .engine import Engine
from .errors import CloseConnection, MongoError
from .failpoints import FailPoints
from .history import DEFAULT_WINDOW_S
from .majority import MemberReplication, wait_after_cluster_time, wait_for_write_concern
from .operation import CommandContext
from .privileges import on_cluster
from .registry import COMMANDS, Access, Runs, command
from .tls import server_context
from .topology import SetView, Topology
from .users import Catalog
from .wire import ProtocolError, Request, decode_request, encode_reply, parse_header

log = logging.getLogger("mongosim")
# The command modules the server answers for: importing them registers their commands
# in COMMANDS (topology's and auth's come with those modules, imported below).
COMMAND_MODULES = (commands_read, commands_write, commands_catalog, commands_txn, explain,
                   user_commands)  # fmt: skip
_request_ids = itertools.count(1)
MEMBERS = 1  # data-bearing members of the replica set
_connection_ids = itertools.count(1)


async def _block(injected: Mapping[str, Any]) -> None:
    """failCommand's blockConnection: hold the connection for blockTimeMS."""
    if injected.get("blockConnection"):
        await asyncio.sleep(int(injected.get("blockTimeMS", 0)) / 1000)


async def _fail_command(injected: Mapping[str, Any]) -> dict[str, Any] | None:
    """failCommand before the command runs: block, close (CloseConnection), fail with
    errorCode; or the writeConcernError to put on its reply."""
    await _block(injected)
    if injected.get("closeConnection"):
        raise CloseConnection()
    if "errorCode" in injected:
        raise MongoError(
            int(injected["errorCode"]),
            "Failing command via 'failCommand' failpoint",
            labels=injected.get("errorLabels", []),
            extra={"_explicit_labels": "errorLabels" in injected},
        )
    wc_error = injected.get("writeConcernError")
    return None if wc_error is None else dict(wc_error)


class Server:
    """Everything a connection needs to answer a command."""

    def __init__(
        self,
        engine: Engine,
        topology: Topology,
        failpoints: FailPoints,
        auth: Auth,
        members: int = MEMBERS,
        shutdown: Callable[[], None] | None = None,
    ) -> None:
        self.engine, self.topology, self.failpoints = engine, topology, failpoints
        self.auth = auth
        self.registry = engine.registry
        self.members = members  # data-bearing members, for the write concerns it can satisfy
        self.shutdown = shutdown  # stops this member (a member of a multi-member set)

    async def handle(self, request: Request, conn: Connection) -> dict[str, Any] | None:
        """The reply for a request, or None when the connection must close without one."""
        cmd = request.command
        name = next(iter(cmd), "")
        ctx = CommandContext(conn.id, conn.app_name, self.failpoints)
        wc_error: dict[str, Any] | None = None
        after_run: dict[str, Any] | None = None
        try:
            injected = self.failpoints.for_command(name, conn.app_name)
            if injected is not None and injected.get("mongosimAfterRun"):
                # mongosim only: the command runs (its write concern waited for), then its
                # reply is held or dropped: a reply lost after the work was done, which
                # mongod's failCommand (it acts before the command runs) cannot make.
                after_run = injected
            elif injected is not None:
                wc_error = await _fail_command(injected)
            self.failpoints.check_max_time(cmd)
            replication = self.engine.replication  # None for a lone mongosim: no waits
            if replication is not None:
                await _caught_up(replication, cmd)
            reply = await self._dispatch(name, request, conn, ctx)
            if wc_error is None:
                wc_error = unsatisfiable_write_concern(cmd.get("writeConcern"), self.members)
                if wc_error is None and replication is not None:
                    wc_error = await self._replicated(replication, cmd, ctx)
            if wc_error is not None:
                reply["writeConcernError"] = dict(wc_error)
        except MongoError as exc:
            reply = self._error_reply(name, cmd, exc, ctx)
        except CloseConnection:
            return None
        except Exception as exc:
            log.exception("internal error running %s", name)
            reply = MongoError(1, f"{type(exc).__name__}: {exc}").to_reply()
        if wc_error is not None and "errorLabels" not in reply:
            self._label_write_concern_error(name, cmd, reply, wc_error)
        if after_run is not None:
            await _block(after_run)
            if after_run.get("closeConnection"):
                return None
        return self._decorate(reply, ctx, cmd)

    def _label_write_concern_error(
        self, name: str, cmd: Mapping[str, Any], reply: dict[str, Any], wc_error: Mapping[str, Any]
    ) -> None:
        code = int(wc_error.get("code", 0))
        found = labels.compute(name, cmd, None, code, False)
        if wc_error.get("errorLabels") is not None:
            found = list(wc_error["errorLabels"])
        if found:
            reply["errorLabels"] = found
        if labels.is_state_change(code):
            # mongod's appendErrorLabelsAndTopologyVersion (service_entry_point_common.cpp)
            # attaches topologyVersion for a writeConcernError's code of those categories
            # as for the reply's own (_error_reply).
            reply["topologyVersion"] = self.topology.topology_version()

    async def _replicated(
        self, replication: MemberReplication, cmd: Mapping[str, Any], ctx: CommandContext
    ) -> dict[str, Any] | None:
        """w > 1 and "majority": wait for the set's members before the reply; the
        writeConcernError when wtimeout passed first or the primary stepped down (the
        write itself stands)."""
        if "writeConcern" not in cmd:
            return None
        # A command that wrote nothing (a read-only commitTransaction among them) waits
        # for the newest optime, so what it read is majority-committed when it returns:
        # mongod sets the client's last optime to the system's for such a command
        # (service_entry_point_common.cpp; jstests/replsets/speculative_read_transaction.js).
        ts = ctx.operation_time or self.engine.oplog.last_ts
        return await wait_for_write_concern(
            replication, cmd["writeConcern"], ts, wrote=ctx.operation_time is not None
        )

    async def _dispatch(
        self, name: str, request: Request, conn: Connection, ctx: CommandContext
    ) -> dict[str, Any]:
        """The one dispatch path: look the command up, authorize it, check the member may
        run it, then run it where its registration says."""
        cmd, db = request.command, request.db
        found = self.registry.get(name)
        if found is None:
            # mongod looks the command up before checking anything else (CommandNotFound).
            raise MongoError(59, f"no such command: '{name}'")
        self.auth.authorize(found, name, db, cmd, conn.auth)
        self.topology.check_writable(found, cmd)
        reply: dict[str, Any]
        match found.runs:
            case Runs.ENGINE:
                reply = await self.engine.run_command(db, cmd, ctx, found)
            case Runs.TOPOLOGY:
                reply = found.handler(self.topology, cmd, conn.id)
            case Runs.AUTH:
                reply = found.handler(self.auth, db, cmd, conn.auth)
            case Runs.SERVER:
                reply = await found.handler(self, request, conn)
        self.auth.note_reply(found, name, db, cmd, reply, conn.auth)  # cursor owners
        return reply

    def _error_reply(
        self, name: str, cmd: Mapping[str, Any], exc: MongoError, ctx: CommandContext
    ) -> dict[str, Any]:
        explicit = exc.extra.pop("_explicit_labels", False)
        reply = exc.to_reply()
        if explicit:
            found = list(exc.labels)
        else:
            found = list(
                dict.fromkeys(
                    [*exc.labels, *labels.compute(name, cmd, exc.code, None, ctx.is_change_stream)]
                )
            )
        reply.pop("errorLabels", None)
        if found:
            reply["errorLabels"] = found
        if labels.is_state_change(exc.code):
            # mongod attaches its topologyVersion to NotPrimary and Shutdown errors
            # (service_entry_point_common.cpp), so drivers can tell a stale error from news.
            reply["topologyVersion"] = self.topology.topology_version()
        return reply

    def _decorate(
        self, reply: dict[str, Any], ctx: CommandContext, cmd: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        reply.setdefault("ok", 1.0)
        now = self.engine.cluster_time()
        reply["$clusterTime"] = {
            "clusterTime": now,
            "signature": {"hash": Binary(b"\0" * 20, 0), "keyId": Int64(0)},
        }
        reply["operationTime"] = ctx.operation_time or self._read_time(ctx, cmd, now)
        return reply

    def _read_time(
        self, ctx: CommandContext, cmd: Mapping[str, Any] | None, now: Timestamp
    ) -> Timestamp:
        """A command that wrote nothing is a read: on a member of a replica set a
        majority read's operationTime is the majority-committed snapshot, not the
        member's last applied optime (mongod's computeOperationTime and
        getReadOperationTime, src/mongo/db/service_entry_point_common.cpp; jstest
        replsets/operation_time_read_and_write_concern.js). A change stream reads
        majority-committed data, so its aggregate and getMores answer the same: a client
        must never learn a time past events the stream has not returned yet. A lone
        mongosim's commit point is its last write, so nothing changes there."""
        replication = self.engine.replication
        if replication is None:
            return now
        level = ((cmd or {}).get("readConcern") or {}).get("level")
        if ctx.is_change_stream or level == "majority":
            committed: Timestamp = replication.committed_ts()
            return committed
        return now


async def _caught_up(replication: MemberReplication, cmd: Mapping[str, Any]) -> None:
    """readConcern afterClusterTime: wait for this member to catch up, up to maxTimeMS."""
    if "readConcern" in cmd and not await wait_after_cluster_time(
        replication, cmd["readConcern"], cmd.get("maxTimeMS")
    ):
        raise MongoError(50, "operation exceeded time limit")


# The connection layer's own commands (Runs.SERVER: handler(server, request, connection)).
@command("hello", "isMaster", runs=Runs.SERVER, access=Access.PUBLIC)
async def _hello(server: Server, request: Request, conn: Connection) -> dict[str, Any]:
    cmd = request.command
    client = cmd.get("client") or {}
    app = (client.get("application") or {}).get("name")
    if app:
        conn.app_name = app
    legacy = request.legacy or next(iter(cmd), "").lower() == "ismaster"
    hello = await server.topology.hello(cmd, conn.id, legacy)
    server.auth.decorate_hello(cmd, hello, conn.auth)
    return hello


@command("configureFailPoint", runs=Runs.SERVER, access=Access.USER)
async def _configure_fail_point(
    server: Server, request: Request, conn: Connection
) -> dict[str, Any]:
    return server.failpoints.configure(request.command)


@command("replSetStepDown", runs=Runs.SERVER, needs=on_cluster("replSetStateChange"))
async def _step_down(server: Server, request: Request, conn: Connection) -> dict[str, Any]:
    return await server.topology.step_down(request.command)


@command("shutdown", runs=Runs.SERVER, needs=on_cluster("shutdown"))
async def _shutdown(server: Server, request: Request, conn: Connection) -> dict[str, Any]:
    """Stop this member of a multi-member set. Unless ``force``, a primary steps down
    first, failing as replSetStepDown does when no other member can take over (mongod's
    shutdown command). The reply is the closed connection, as mongod's. A lone mongosim
    refuses it as a command it does not have (its process is stopped by a signal)."""
    if server.shutdown is None:
        raise MongoError(59, "no such command: 'shutdown'")
    cmd = request.command
    if server.topology.primary and not cmd.get("force"):
        seconds = cmd.get("timeoutSecs", 15)
        await server.topology.step_down({"replSetStepDown": max(float(seconds), 60.0)})
    server.shutdown()
    raise CloseConnection()


def _exhausts(request: Request, reply: Mapping[str, Any]) -> bool:
    """Whether a reply continues an exhaust stream: an open cursor's getMore batch."""
    cursor = reply.get("cursor")
    return (
        request.exhaust_allowed
        and not request.legacy
        and next(iter(request.command), "") == "getMore"
        and reply.get("ok") == 1.0
        and isinstance(cursor, Mapping)
        and cursor.get("id", 0) != 0
    )


def unsatisfiable_write_concern(
    write_concern: Any, members: int = MEMBERS
) -> dict[str, Any] | None:
    """The writeConcernError mongod reports, after applying the write, for a write concern a
    one-member set cannot satisfy (replication_coordinator_impl.cpp,
    _checkIfWriteConcernCanBeSatisfied_inlock): w above the number of data-bearing members
    is UnsatisfiableWriteConcern (100); an unknown tag-set mode is UnknownReplWriteConcern (79).
    """
    if not isinstance(write_concern, Mapping):
        return None
    w = write_concern.get("w")
    if isinstance(w, (int, float)) and not isinstance(w, bool) and w > members:
        return {
            "code": 100,
            "codeName": "UnsatisfiableWriteConcern",
            "errmsg": "Not enough data-bearing nodes",
        }
    if isinstance(w, str) and w != "majority":
        return {
            "code": 79,
            "codeName": "UnknownReplWriteConcern",
            "errmsg": f"No write concern mode named '{w}' found in replica set configuration",
        }
    return None


class Connection(asyncio.Protocol):
    def __init__(
        self,
        server: Server,
        live: set[Connection],
        tls: ssl.SSLContext | None = None,
        tasks: set[asyncio.Task[None]] | None = None,
    ) -> None:
        self.server, self.live = server, live
        # Every connection's task, until done: closing the server awaits them, so none is
        # left pending for a loop that closes (its coroutine then dies in the collector).
        self.tasks = tasks if tasks is not None else set()
        self.id = next(_connection_ids)
        self.app_name: str | None = None
        self._buffer = bytearray()
        self._queue: asyncio.Queue[tuple[Any, bytes]] = asyncio.Queue()
        self._tls = tls
        self._raw: asyncio.Transport | None = None  # the TCP transport, from the first byte
        self.transport: asyncio.Transport | None = None  # what replies go through
        self.task: asyncio.Task[None] | None = None
        self.auth = make_connection_auth(None)
        self.refused = False  # its member is cut off from clients (replset's network)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self.refused:
            transport.abort()
            return
        self._raw = transport
        self.auth = make_connection_auth(transport.get_extra_info("peername"))
        self.live.add(self)
        loop = asyncio.get_running_loop()
        if self._tls is None:
            self.transport = transport
            self.task = loop.create_task(self._serve())
        else:
            transport.pause_reading()  # the ClientHello is start_tls's, not data_received's
            self.task = loop.create_task(self._handshake(transport, self._tls))
        self.tasks.add(self.task)
        self.task.add_done_callback(self.tasks.discard)

    async def _handshake(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        """TLS by ``start_tls`` rather than ``create_server(ssl=...)``: the connection is
        in ``live`` from its first byte, so closing the server also ends a handshake still
        in progress (asyncio's server leaves those to the garbage collector: an unclosed
        transport, a ResourceWarning)."""
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(raw, self, context, server_side=True)
        except (OSError, ssl.SSLError) as exc:  # the client's certificate, or it went away
            log.debug("TLS handshake failed on connection %d: %s", self.id, exc)
            raw.abort()
            return
        if tls is None:  # the loop cannot upgrade this transport (never for TCP)
            raw.abort()
            return
        self.transport = tls
        await self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        if self.task is not None:
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 16:
            header = parse_header(bytes(self._buffer[:16]))
            if header.length < 16 or header.length > 48_000_000:
                self.close()
                return
            if len(self._buffer) < header.length:
                return
            body = bytes(self._buffer[16 : header.length])
            del self._buffer[: header.length]
            self._queue.put_nowait((header, body))

    async def _serve(self) -> None:
        while True:
            header, body = await self._queue.get()
            try:
                request = decode_request(header, body)
            except ProtocolError:
                self.close()
                return
            except MongoError as exc:
                request = None
                error = exc
            if request is None:
                log.warning("bad request on connection %d: %s", self.id, error)
                self.close()
                return
            reply = await self.server.handle(request, self)
            if reply is None:
                self.close()
                return
            if request.more_to_come or self.transport is None:
                continue
            if _exhausts(request, reply):
                if not await self._stream(request, reply):
                    return
                continue
            self.transport.write(encode_reply(request, reply, request_id=next(_request_ids)))

    async def _stream(self, request: Request, reply: dict[str, Any]) -> bool:
        """An exhaust getMore (OP_MSG exhaustAllowed): mongod answers it with a stream of
        replies flagged moreToCome, each in response to the one before, running the getMore
        again itself until the cursor is exhausted (the wire protocol manual: "exhaustAllowed",
        "moreToCome"). False when the connection had to close."""
        assert self.transport is not None
        answering = request
        while True:
            request_id = next(_request_ids)
            more = _exhausts(request, reply)
            self.transport.write(
                encode_reply(answering, reply, request_id=request_id, more_to_come=more)
            )
            if not more:
                return True
            header = dataclasses.replace(request.header, request_id=request_id)
            answering = dataclasses.replace(request, header=header)
            again = dataclasses.replace(
                request, command={**request.command, "getMore": reply["cursor"]["id"]}
            )
            next_reply = await self.server.handle(again, self)
            if next_reply is None:
                self.close()
                return False
            reply = next_reply

    def close(self) -> None:
        transport = self.transport or self._raw  # TLS, or a handshake still in progress
        if transport is not None:
            transport.abort()


class MongoSim:
    """``async with MongoSim(port=0) as sim: sim.uri`` — a replica set for tests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        replset: str = "rs0",
        oplog_size: int = 100_000,
        ttl_monitor_interval: float = 60.0,
        data_dir: str | Path | None = None,
        enable_test_commands: bool = True,
        noop_interval: float = 10.0,
        snapshot_history_window_s: int = DEFAULT_WINDOW_S,
        auth: bool = False,
        tls_cert_key_file: str | Path | None = None,
        tls_ca_file: str | Path | None = None,
        tls_allow_connections_without_certificates: bool = False,
        auth_catalog: Catalog | None = None,
        member_of: SetView | None = None,
        members: int = MEMBERS,
        primary: bool = True,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        """``auth_catalog``, ``member_of``, ``members``, ``primary`` and ``on_shutdown``
        make it one member of a multi-member set (``replset.ReplicaSet`` passes them):
        the users and roles the members share, the set it asks for hosts and elections,
        the set's size, whether it starts as the primary (a secondary writes nothing of
        its own), and what the shutdown command calls."""
        self.host, self.port, self.replset = host, port, replset
        self.auth = Auth(
            auth_catalog or Catalog(Path(data_dir) if data_dir else None), enabled=auth
        )
        self.member_of, self.members, self.on_shutdown = member_of, members, on_shutdown
        self.ssl = (
            server_context(
                tls_cert_key_file, tls_ca_file, tls_allow_connections_without_certificates
            )
            if tls_cert_key_file is not None
            else None
        )
        self.engine = Engine(
            COMMANDS,
            oplog_size=oplog_size,
            data_dir=data_dir,
            ttl_monitor_interval=ttl_monitor_interval,
            noop_interval=noop_interval,
            snapshot_history_window_s=snapshot_history_window_s,
        )
        self.engine.writable = primary
        self.failpoints = FailPoints(enable_test_commands)
        self.topology: Topology | None = None
        self._server: asyncio.Server | None = None
        self._live: set[Connection] = set()
        self.clients_cut = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def uri(self) -> str:
        tls = "&tls=true" if self.ssl is not None else ""
        return f"mongodb://{self.host}:{self.port}/?replicaSet={self.replset}{tls}"

    async def start(self) -> None:
        await self.engine.start()
        loop = asyncio.get_running_loop()
        self.topology = Topology(self.host, self.port, self.replset, self.engine)
        if self.member_of is not None:
            self.topology.set = self.member_of
            self.topology.primary = self.engine.writable
        server = Server(
            self.engine, self.topology, self.failpoints, self.auth, self.members, self.on_shutdown
        )
        self._server = await loop.create_server(
            lambda: self._connection(server), self.host, self.port
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self.topology.port = self.port

    def _connection(self, server: Server) -> Connection:
        conn = Connection(server, self._live, self.ssl, self._tasks)
        conn.refused = self.clients_cut
        return conn

    def cut_clients(self, cut: bool) -> None:
        """Cut this member off from clients (a network partition, ``replset``): its
        connections are aborted and new ones aborted as they are accepted, until healed."""
        self.clients_cut = cut
        if cut:
            for conn in list(self._live):
                conn.close()

    async def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            # Stop accepting first, and let the accepts already under way finish before
            # Server.close(): on Python 3.11 an accept whose task runs after close() fails
            # an assertion in Server._attach and leaks its socket (fixed in 3.12).
            loop = asyncio.get_running_loop()
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
            await asyncio.sleep(0)
            server.close()
            await self._close_connections(server)
        for conn in list(self._live):
            conn.close()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5.0)
        if self.topology is not None:
            self.topology.close()
        await asyncio.sleep(0)
        await self.engine.close()

    async def _close_connections(self, server: asyncio.Server, within_s: float = 5.0) -> None:
        """End every connection, including one accepted just before the close whose
        connection_made is still to come (asyncio's accept task, then a call_soon), and
        wait until their sockets are closed: a socket left to the garbage collector is a
        ResourceWarning in whatever test runs next. Python 3.11's ``Server.wait_closed``
        does not wait for connections (3.12's does), so this counts them as it does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while getattr(server, "_active_count", 0) and loop.time() < deadline:
            for conn in list(self._live):
                conn.close()
            await asyncio.sleep(0.001)

    async def __aenter__(self) -> MongoSim:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

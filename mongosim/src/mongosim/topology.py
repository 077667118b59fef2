"""The replica-set identity: hello, the informational admin commands, and step-down.

A member's ``Topology`` is its own state (primary or secondary, term, electionId,
topologyVersion); where it belongs to a multi-member set (``replset.ReplicaSet``) it asks
that set, through ``SetView``, for the other members, the primary and elections.
Without one (the default) mongosim is the primary of a one-member set. ``hosts``/``me``
name exactly the address clients dial, or drivers drop the member (SDAM spec: "me"
mismatch). A lone member's step-down makes it a secondary for the requested seconds,
then it is re-elected with a new electionId; each change bumps topologyVersion and
answers awaiting hellos at once (server monitoring spec: streaming protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from bson.int64 import Int64
from bson.objectid import ObjectId

from . import history, privileges
from .errors import MongoError
from .privileges import on_cluster
from .registry import Access, Command, Runs, command

if TYPE_CHECKING:
    from .engine import Engine

VERSION = "7.0.14"
MAX_WIRE_VERSION = 21  # MongoDB 7.0


class SetView(Protocol):
    """What a member of a multi-member set asks of its set (``replset.ReplicaSet``)."""

    @property
    def set_version(self) -> int: ...

    def hosts(self) -> list[str]: ...

    def primary_host(self) -> str | None: ...

    def majority_optime(self) -> dict[str, Any]: ...  # {"ts", "t"}: the commit point

    def status(self, me: str) -> dict[str, Any]: ...  # replSetGetStatus's body

    async def step_down_member(self, me: str, cmd: Mapping[str, Any]) -> dict[str, Any]: ...

    def step_up_member(self, me: str) -> dict[str, Any]: ...


def election_id(term: int) -> ObjectId:
    """mongod's electionId: ``OID::fromTerm`` (0x7fffffff, then the term), so a later
    term's id compares greater, as drivers' stale-primary check needs."""
    return ObjectId(b"\x7f\xff\xff\xff" + term.to_bytes(8, "big"))


class Topology:
    def __init__(self, host: str, port: int, replset: str, engine: Engine) -> None:
        self.host, self.port, self.replset, self.engine = host, port, replset, engine
        self.process_id = ObjectId()
        self.counter = 0
        self.election_id = ObjectId()
        self.primary = True
        self.started = time.monotonic()
        self._changed = asyncio.Event()
        self._step_up: asyncio.Task[None] | None = None
        self.set: SetView | None = None  # the multi-member set this member belongs to
        self.term = 1  # this member's view of the election term
        # replSetGetRBID's rollback id: bumped by each rollback (replset.ReplicaSet keeps
        # it across a restart, as mongod keeps it in local.system.rollback.id).
        self.rbid = 1

    def become_primary(self, term: int) -> None:
        """Won the election of ``term`` (replset.ReplicaSet decides)."""
        self.primary, self.term, self.election_id = True, term, election_id(term)
        self.engine.writable = True
        self.engine.oplog.term = term
        # mongod's new primary writes this no-op in its term first: the commit point
        # can then advance in the new term before any client writes.
        self.engine.append_noop("new primary")
        self.changed()

    def become_secondary(self, term: int) -> None:
        """A secondary in ``term``: stepped down, or another member was elected. mongod
        aborts the open transactions of a primary that steps down."""
        was_primary = self.primary
        self.primary, self.term = False, max(self.term, term)
        self.engine.writable = False
        if was_primary:
            self.engine.sessions.kill_all()
            self.engine.notify_locks_released()
        self.changed()

    def changed(self) -> None:
        """Something hello reports changed: bump topologyVersion, answer awaiting hellos."""
        self._bump()

    @property
    def me(self) -> str:
        return f"{self.host}:{self.port}"

    def topology_version(self) -> dict[str, Any]:
        return {"processId": self.process_id, "counter": Int64(self.counter)}

    def _bump(self) -> None:
        self.counter += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def hello(self, cmd: Mapping[str, Any], conn_id: int, legacy: bool) -> dict[str, Any]:
        version = cmd.get("topologyVersion")
        if (
            version is not None
            and "maxAwaitTimeMS" in cmd
            and version.get("processId") == self.process_id
            and int(version.get("counter", -1)) == self.counter
        ):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), int(cmd["maxAwaitTimeMS"]) / 1000)
        ts = self.engine.cluster_time()
        now = _dt.datetime.now(_dt.UTC)
        if self.set is None:
            hosts, primary, set_version = [self.me], self.me if self.primary else None, 1
            last_write = {
                "opTime": {"ts": ts, "t": Int64(1)},
                "lastWriteDate": now,
                "majorityOpTime": {"ts": ts, "t": Int64(1)},
                "majorityWriteDate": now,
            }
        else:
            # A primary cut off from the set still believes it is the primary (in its
            # older term) until it steps down; drivers pick by electionId (SDAM spec).
            hosts, primary, set_version = (
                self.set.hosts(),
                self.me if self.primary else self.set.primary_host(),
                self.set.set_version,
            )
            last_write = self.last_write()
        reply: dict[str, Any] = {
            "topologyVersion": self.topology_version(),
            "hosts": hosts,
            "setName": self.replset,
            "setVersion": set_version,
            ("ismaster" if legacy else "isWritablePrimary"): self.primary,
            "secondary": not self.primary,
        }
        if primary is not None:
            reply["primary"] = primary
        reply.update(
            {
                "me": self.me,
                "electionId": self.election_id,
                "lastWrite": last_write,
                "maxBsonObjectSize": 16 * 1024 * 1024,
                "maxMessageSizeBytes": 48_000_000,
                "maxWriteBatchSize": 100_000,
                "localTime": now,
                "logicalSessionTimeoutMinutes": 30,
                "connectionId": conn_id,
                "minWireVersion": 0,
                "maxWireVersion": MAX_WIRE_VERSION,
                "readOnly": False,
            }
        )
        if not legacy:
            reply["helloOk"] = True
        return reply

    def optime(self) -> dict[str, Any]:
        """This member's last applied optime: its newest oplog slot's ts and term."""
        newest = self.engine.oplog.newest
        if newest is None:
            return {"ts": self.engine.cluster_time(), "t": Int64(-1)}
        return {"ts": newest.ts, "t": Int64(newest.term)}

    def last_write(self) -> dict[str, Any]:
        """hello's lastWrite for a member of a multi-member set: its own optime (a lagging
        secondary's is behind) and the set's commit point."""
        assert self.set is not None
        newest = self.engine.oplog.newest
        wrote = newest.entries[0].wall if newest is not None else _dt.datetime.now(_dt.UTC)
        majority = self.set.majority_optime()
        return {
            "opTime": self.optime(),
            "lastWriteDate": wrote,
            "majorityOpTime": majority,
            "majorityWriteDate": _dt.datetime.fromtimestamp(majority["ts"].time, _dt.UTC),
        }

    def check_writable(self, found: Command, cmd: Mapping[str, Any]) -> None:
        """On a secondary: NotWritablePrimary for a write (an aggregate with ``$out`` or
        ``$merge`` is one, unless its read preference allows a secondary, on a member of
        a set) and for any command of a transaction, NotPrimaryNoSecondaryOk for a read
        the preference keeps on the primary."""
        if self.primary:
            return
        if cmd.get("autocommit") is False:
            # A multi-document transaction runs on the primary only, whatever its read
            # preference: mongod's command dispatch cannot opt in to a secondary read
            # inside one (couldHaveOptedIn is false in service_entry_point_common.cpp;
            # jstests/replsets/transactions_only_allowed_on_primaries.js).
            raise MongoError(10107, "not primary")
        writing_aggregate = found.name == "aggregate" and any(
            "$out" in s or "$merge" in s for s in cmd.get("pipeline", [])
        )
        if writing_aggregate and self.set is not None and _allows_secondary(cmd):
            # mongod 5.0+ runs it on a secondary the read preference chose: it reads
            # there and writes through the primary (commands_read._writes_to).
            return
        if found.writes or writing_aggregate:
            raise MongoError(10107, "not primary")
        if found.reads_data and not _allows_secondary(cmd):
            raise MongoError(13435, "not primary and secondaryOk=false")

    async def step_down(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """replSetStepDown: a secondary for the requested seconds, then re-elected."""
        if not self.primary:
            raise MongoError(10107, "not primary so can't step down")
        if self.set is not None:
            return await self.set.step_down_member(self.me, cmd)
        seconds = float(cmd.get("replSetStepDown") or 60)
        self.primary = False
        self._bump()
        self._step_up = asyncio.get_running_loop().create_task(self._re_elect(seconds))
        return {}

    async def _re_elect(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.primary = True
        self.election_id = ObjectId()
        self._bump()

    def step_up(self) -> dict[str, Any]:
        """replSetStepUp: a primary answers OK (mongod's stepup.js); a secondary of a set
        is elected at once; a lone member stepped down is re-elected now rather than at
        the end of its step-down period."""
        if self.set is not None:
            return self.set.step_up_member(self.me)
        if not self.primary:
            if self._step_up is not None:
                self._step_up.cancel()
            self.primary = True
            self.election_id = ObjectId()
            self._bump()
        return {}

    def close(self) -> None:
        if self._step_up is not None:
            self._step_up.cancel()


def _allows_secondary(cmd: Mapping[str, Any]) -> bool:
    mode = (cmd.get("$readPreference") or {}).get("mode", "primary")
    return bool(mode != "primary")


@command("buildInfo", runs=Runs.TOPOLOGY, access=Access.PUBLIC)
def _build_info(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    parts = [int(p) for p in VERSION.split(".")]
    return {
        "version": VERSION,
        "gitVersion": "mongosim",
        "versionArray": [*parts, 0],
        "bits": 64,
        "debug": False,
        "maxBsonObjectSize": 16 * 1024 * 1024,
        "storageEngines": ["mongosim"],
        "modules": [],
        "openssl": {"running": "disabled"},
        "javascriptEngine": "none",
        "sysInfo": "deprecated",
        "allocator": "system",
    }


@command("getParameter", runs=Runs.TOPOLOGY, needs=on_cluster("getParameter"))
def _get_parameter(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    params = {
        "enableTestCommands": True,
        "featureCompatibilityVersion": {"version": "7.0"},
        "transactionLifetimeLimitSeconds": 60,
        "periodicNoopIntervalSecs": 10,
        "ttlMonitorSleepSecs": int(t.engine.ttl_monitor_interval),
        history.PARAMETER: t.engine.history.window_s,
    }
    if cmd.get("getParameter") == "*":
        return params
    return {k: v for k, v in params.items() if k in cmd}


@command("getCmdLineOpts", runs=Runs.TOPOLOGY, needs=on_cluster("getCmdLineOpts"))
def _cmd_line_opts(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    data_dir = t.engine.data_dir_path
    return {
        "argv": ["mongosim", "--port", str(t.port), "--replSet", t.replset],
        "parsed": {
            "net": {"bindIp": t.host, "port": t.port},
            "replication": {"replSet": t.replset},
            "setParameter": {"enableTestCommands": "1"},
            "storage": {"dbPath": str(data_dir) if data_dir else ""},
        },
    }


@command("serverStatus", runs=Runs.TOPOLOGY, needs=on_cluster("serverStatus"))
def _server_status(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    uptime = time.monotonic() - t.started
    return {
        "host": t.me,
        "version": VERSION,
        "process": "mongod",
        "pid": Int64(os.getpid()),
        "uptime": float(int(uptime)),
        "uptimeMillis": Int64(int(uptime * 1000)),
        "localTime": _dt.datetime.now(_dt.UTC),
        "repl": {
            "setName": t.replset,
            "isWritablePrimary": t.primary,
            "hosts": [t.me] if t.set is None else t.set.hosts(),
            "primary": (t.me if t.primary else None) if t.set is None else t.set.primary_host(),
            "me": t.me,
        },
        "storageEngine": {"name": "mongosim"},
        "oplog": {"entries": len(t.engine.oplog)},
    }


@command("replSetGetRBID", runs=Runs.TOPOLOGY, needs=on_cluster("internal"))
def _repl_rbid(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    """mongod's rollback id: ``{rbid: N, ok: 1}``, N bumped by each rollback. Needs the
    ``internal`` action on the cluster, as mongod's ReplSetCommand (root has it)."""
    return {"rbid": t.rbid}


@command("replSetGetStatus", runs=Runs.TOPOLOGY, needs=on_cluster("replSetGetStatus"))
def _repl_status(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    if t.set is not None:
        return t.set.status(t.me)
    ts = t.engine.cluster_time()
    optime = {"ts": ts, "t": Int64(1)}
    return {
        "set": t.replset,
        "date": _dt.datetime.now(_dt.UTC),
        "myState": 1 if t.primary else 2,
        "members": [
            {
                "_id": 0,
                "name": t.me,
                "health": 1.0,
                "state": 1 if t.primary else 2,
                "stateStr": "PRIMARY" if t.primary else "SECONDARY",
                "optime": optime,
                "self": True,
            }
        ],
        "optimes": {"lastCommittedOpTime": optime, "appliedOpTime": optime},
    }


@command("replSetStepUp", runs=Runs.TOPOLOGY, needs=on_cluster("replSetStateChange"))
def _step_up(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return t.step_up()


@command("ping", runs=Runs.TOPOLOGY, access=Access.PUBLIC)
def _ping(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return {}


# mongod asks the setParameter action on the cluster; mongosim, root.
@command("setParameter", runs=Runs.TOPOLOGY, needs=privileges.root)
def _set_parameter(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return history.set_parameter(t.engine, cmd)


@command("hostInfo", runs=Runs.TOPOLOGY, needs=on_cluster("hostInfo"))
def _host_info(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return {"system": {"hostname": t.host, "numCores": os.cpu_count()}}


@command("whatsmyuri", runs=Runs.TOPOLOGY, access=Access.PUBLIC)
def _whats_my_uri(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return {"you": "127.0.0.1"}


@command("getLog", runs=Runs.TOPOLOGY, access=Access.PUBLIC)
def _get_log(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
    return {"totalLinesWritten": 0, "log": []}

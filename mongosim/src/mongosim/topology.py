"""The replica-set identity: hello, the informational admin commands, and step-down.

mongosim is the primary of a one-member set. ``hosts``/``me`` name exactly the address
clients dial, or drivers drop the member (SDAM spec: "me" mismatch). A step-down makes it
a secondary for the requested seconds, then it is re-elected with a new electionId; each
change bumps topologyVersion and answers awaiting hellos at once (server monitoring
spec: streaming protocol).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
        reply: dict[str, Any] = {
            "topologyVersion": self.topology_version(),
            "hosts": [self.me],
            "setName": self.replset,
            "setVersion": 1,
            ("ismaster" if legacy else "isWritablePrimary"): self.primary,
            "secondary": not self.primary,
        }
        if self.primary:
            reply["primary"] = self.me
        reply.update(
            {
                "me": self.me,
                "electionId": self.election_id,
                "lastWrite": {
                    "opTime": {"ts": ts, "t": Int64(1)},
                    "lastWriteDate": now,
                    "majorityOpTime": {"ts": ts, "t": Int64(1)},
                    "majorityWriteDate": now,
                },
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

    def check_writable(self, found: Command, cmd: Mapping[str, Any]) -> None:
        """On a secondary: NotWritablePrimary for a write (an aggregate with ``$out`` or
        ``$merge`` is one), NotPrimaryNoSecondaryOk for a read the preference keeps on
        the primary."""
        if self.primary:
            return
        writes = found.writes or (
            found.name == "aggregate"
            and any("$out" in s or "$merge" in s for s in cmd.get("pipeline", []))
        )
        if writes:
            raise MongoError(10107, "not primary")
        if found.reads_data and not _allows_secondary(cmd):
            raise MongoError(13435, "not primary and secondaryOk=false")

    async def step_down(self, cmd: Mapping[str, Any]) -> dict[str, Any]:
        """replSetStepDown: a secondary for the requested seconds, then re-elected."""
        if not self.primary:
            raise MongoError(10107, "not primary so can't step down")
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
            "hosts": [t.me],
            "primary": t.me if t.primary else None,
            "me": t.me,
        },
        "storageEngine": {"name": "mongosim"},
        "oplog": {"entries": len(t.engine.oplog)},
    }


@command("replSetGetStatus", runs=Runs.TOPOLOGY, needs=on_cluster("replSetGetStatus"))
def _repl_status(t: Topology, cmd: Mapping[str, Any], conn_id: int) -> dict[str, Any]:
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

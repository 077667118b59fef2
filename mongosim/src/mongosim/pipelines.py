"""The engine as aggregation stages and change streams see it.

:class:`PipelineContext` gives a pipeline's stages other collections, the command's
variables and the writes of ``$merge``/``$out``; :class:`StreamHost` gives a change
stream the oplog, ``updateLookup`` and its own stages. Both sit above the engine and
below the commands that open pipelines and streams.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from bson.binary import Binary
from bson.timestamp import Timestamp

from .aggregation import run_pipeline
from .engine import Engine
from .expressions import COMMAND_VARIABLES
from .merge import merge_documents, out_documents
from .operation import CommandContext, Op
from .oplog import Oplog


class PipelineContext:
    """What aggregation stages need from the engine: other collections and writes.

    ``writes_to`` is the engine that $out and $merge write into when it is not the one
    read (a secondary's aggregate writes through its primary, as mongod 5.0+'s)."""

    def __init__(self, engine: Engine, db: str, op: Op, writes_to: Engine | None = None) -> None:
        self.engine, self.db, self.op = engine, db, op
        self.writes_to = engine if writes_to is None else writes_to
        self.now = _dt.datetime.now(_dt.UTC)
        self.variables = dict(COMMAND_VARIABLES.get())
        self.collation: Any = None

    def collection_documents(self, coll: str, db: str | None = None) -> Iterable[Mapping[str, Any]]:
        c = self.engine.get_collection(db or self.db, coll)
        return self.engine.candidates(c, {}, self.op.txn) if c is not None else []

    def local_sessions(self) -> list[dict[str, Any]]:
        # uid: SHA-256 of the (empty) user name, as mongod computes it without auth.
        uid = Binary(hashlib.sha256(b"").digest())
        return [
            {"_id": {"id": s.lsid.get("id"), "uid": uid}, "lastUse": self.now}
            for s in self.engine.sessions.sessions.values()
        ]

    def merge_documents(self, spec: Mapping[str, Any], docs: list[dict[str, Any]]) -> None:

        merge_documents(self.writes_to, self.db, spec, docs, self.op)

    def out_documents(self, target: str | Mapping[str, Any], docs: list[dict[str, Any]]) -> None:

        out_documents(self.writes_to, self.db, target, docs, self.op)


class StreamHost:
    """What a change stream needs of the engine (:class:`.changestreams.ChangeStreamHost`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def oplog(self) -> Oplog:
        return self.engine.oplog

    def lookup_document(self, ns: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        return self.engine.lookup_document(ns, key)

    def run_event_pipeline(
        self, events: list[dict[str, Any]], stages: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        return run_pipeline(
            events, stages, PipelineContext(self.engine, "admin", Op(CommandContext(0, None)))
        )

    def visible_ts(self) -> Timestamp | None:
        """The member's commit point in a multi-member set (unless the test-only switch
        lets streams run past it); None, the whole oplog, for a lone mongosim."""
        replication = self.engine.replication
        if replication is None or replication.unsafe_uncommitted_change_streams:
            return None
        return replication.committed_ts()

    async def wait_for_news(self, seconds: float) -> bool:
        replication = self.engine.replication
        if replication is None or replication.unsafe_uncommitted_change_streams:
            return await self.engine.oplog.wait_for_news(seconds)
        return await replication.wait_for_news(seconds)

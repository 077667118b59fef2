"""``$changeStream`` cursors over the oplog.

A stream remembers the oplog position it has scanned up to, so each getMore reads only
what is new (bisect into the oplog, then forward). Its ``postBatchResumeToken`` is the
last returned event's token when a batch filled up, else a high-water mark at the newest
scanned time, so it advances even when nothing matched.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import bson
from bson.raw_bson import RawBSONDocument
from bson.timestamp import Timestamp

from . import change_pushdown, resume_tokens
from .aggregation import STAGES
from .bsonutil import CODEC_OPTIONS, MISSING
from .change_events import command_event, crud_event, invalidate_event
from .change_events import render_oplog_documents as render_oplog_documents
from .errors import MongoError
from .oplog import Oplog, OplogEntry
from .resume_tokens import ResumeToken

DEFAULT_BATCH = 101  # mongod's default first batch; getMore batches are unbounded
DEFAULT_AWAIT_MS = 1000  # mongod's default maxTimeMS for an awaitData getMore
_ALLOWED_STAGES = frozenset(
    {
        "$match",
        "$project",
        "$addFields",
        "$set",
        "$unset",
        "$replaceRoot",
        "$replaceWith",
        "$redact",
    }
)
_FULL_DOCUMENT = frozenset({"default", "updateLookup", "whenAvailable", "required"})
_BEFORE_CHANGE = frozenset({"off", "whenAvailable", "required"})
_HIDDEN_DBS = frozenset({"admin", "config", "local"})
_ID_MODIFIED = (
    "Encountered an event whose _id field, which contains the resume token, was modified by "
    "the pipeline. Modifying the _id field of an event makes it impossible to resume the "
    "stream from that point. Only transformations that retain the unmodified _id field are "
    "allowed."
)

Position = tuple[int, int, int]


class ChangeStreamHost(Protocol):
    @property
    def oplog(self) -> Oplog: ...

    def lookup_document(self, ns: str, key: Mapping[str, Any]) -> dict[str, Any] | None: ...

    def run_event_pipeline(
        self, events: list[dict[str, Any]], stages: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]: ...

    def visible_ts(self) -> Timestamp | None: ...  # the newest ts streams see; None: all

    async def wait_for_news(self, seconds: float) -> bool: ...  # what is visible may grow


def _check_stages(stages: list[Mapping[str, Any]]) -> None:
    for stage in stages:
        name = next(iter(stage), "")
        if name == SPLIT_STAGE:
            # document_source_change_stream_split_large_event.cpp
            raise MongoError(7182802, f"{SPLIT_STAGE} must be the last stage in the pipeline")
        if name not in _ALLOWED_STAGES and name not in STAGES:
            raise MongoError(40324, f"Unrecognized pipeline stage name: '{name}'")
        if name not in _ALLOWED_STAGES:
            # mongod's pipeline.cpp raises IllegalOperation for a stage that is
            # not allowed after $changeStream.
            raise MongoError(
                ILLEGAL_OPERATION, f"{name} is not permitted in a $changeStream pipeline"
            )


ILLEGAL_OPERATION = 20
SPLIT_STAGE = "$changeStreamSplitLargeEvent"
MAX_EVENT_BYTES = 16 * 1024 * 1024  # BSONObjMaxUserSize
INVALID_OPTIONS = 72


class ChangeStream:
    def __init__(
        self,
        host: ChangeStreamHost,
        *,
        db: str,
        coll: str | None,
        spec: Mapping[str, Any],
        stages: list[Mapping[str, Any]],
    ) -> None:
        self.host = host
        self.db, self.coll = db, coll
        self.cluster = bool(spec.get("allChangesForCluster"))
        if self.cluster and (db != "admin" or coll is not None):
            # document_source_change_stream.cpp: InvalidOptions.
            where = f"{db}.{coll}" if coll is not None else db
            raise MongoError(
                INVALID_OPTIONS,
                "A $changeStream with "
                "'allChangesForCluster:true' may only be opened on the 'admin' "
                f"database, and with no collection name; found {where}",
            )
        if db == "admin" and not self.cluster:
            raise MongoError(73, "$changeStream may not be opened on the internal admin database")
        self.full_document = spec.get("fullDocument", "default")
        self.before_change = spec.get("fullDocumentBeforeChange", "off")
        if self.full_document not in _FULL_DOCUMENT:
            raise MongoError(
                2,
                f"Enumeration value '{self.full_document}' for field "
                "'$changeStream.fullDocument' is not a valid value.",
            )
        if self.before_change not in _BEFORE_CHANGE:
            raise MongoError(
                2,
                f"Enumeration value '{self.before_change}' for field "
                "'$changeStream.fullDocumentBeforeChange' is not a valid value.",
            )
        self.expanded = bool(spec.get("showExpandedEvents"))
        self.split = bool(stages) and SPLIT_STAGE in stages[-1]
        if self.split:
            stages = stages[:-1]
        self._ns = f"{db}.{coll}" if coll is not None and not self.cluster else None
        _check_stages(stages)
        # documentKey predicates run on oplog entries, before events are built.
        self._pushdown = change_pushdown.split(stages)
        self.stages = self._pushdown.stages
        self.closed = False
        self._pending_invalidate: OplogEntry | None = None
        self.position, start_ts = self._start_position(spec)
        if host.oplog.history_lost_before(start_ts):
            raise MongoError(
                286,
                "Resume of change stream was not possible, as the resume "
                "point may no longer be in the oplog.",
            )
        self.post_batch_resume_token = resume_tokens.high_water_mark(
            Timestamp(self.position[0], self.position[1])
        )

    def _start_position(self, spec: Mapping[str, Any]) -> tuple[Position, Timestamp]:
        given = [k for k in ("resumeAfter", "startAfter", "startAtOperationTime") if k in spec]
        if len(given) > 1:
            raise MongoError(
                40674, "Only one type of resume option is allowed, but multiple were found."
            )
        if "startAtOperationTime" in spec:
            ts = spec["startAtOperationTime"]
            # Inclusive: everything at ts itself too.
            return (ts.time, ts.inc, -1), ts
        if given:
            token = resume_tokens.decode(spec[given[0]])
            if token.from_invalidate and given[0] == "resumeAfter":
                raise MongoError(
                    260,
                    "Attempting to resume a change stream using "
                    "'resumeAfter' is not allowed from an invalidate "
                    "notification.",
                )
            return token.position, token.ts
        last = self.host.oplog.last_ts
        return (last.time, last.inc, 0xFFFFFFFF), last

    # -- scope -----------------------------------------------------------------------
    def _in_scope(self, entry: OplogEntry) -> bool:
        if self._ns is not None and entry.op != "c":
            # Hot path (every oplog entry, once per open stream): a collection stream's
            # CRUD entries compare their ns as a whole, without splitting it.
            return entry.ns == self._ns
        db = entry.db
        if self.cluster:
            return db not in _HIDDEN_DBS
        if db != self.db:
            return False
        if entry.op == "c":
            return self._command_in_scope(entry)
        if self.coll is None:
            return not entry.coll.startswith("system.")
        return entry.coll == self.coll

    def _command_in_scope(self, entry: OplogEntry) -> bool:
        cmd = entry.cmd or {}
        name = next(iter(cmd), "")
        if name == "dropDatabase":
            # A collection stream learns of it from its collection's own drop entry.
            return self.coll is None
        if name == "renameCollection":
            source = cmd["renameCollection"].split(".", 1)[1]
            return self.coll is None or source == self.coll
        target = cmd.get(name)
        return self.coll is None or target == self.coll

    def _invalidates(self, entry: OplogEntry) -> bool:
        if self.cluster or entry.op != "c":
            return False
        name = next(iter(entry.cmd or {}), "")
        if self.coll is None:
            return name == "dropDatabase"
        return name in ("drop", "renameCollection")

    # -- events ----------------------------------------------------------------------
    def _token(self, entry: OplogEntry, *, invalidate: bool = False) -> dict[str, str]:
        if not invalidate:
            return resume_tokens.event_token(entry.ts, entry.txn_index)
        return ResumeToken(entry.ts, entry.txn_index, False, invalidate).encode()

    def _render(self, entry: OplogEntry) -> dict[str, Any] | None:
        token = self._token(entry)
        if entry.op == "c":
            return command_event(entry, token, self.expanded)
        event = crud_event(entry, token, self.expanded, self._update_document(entry, token))
        if self.before_change != "off" and entry.op != "i":
            event["fullDocumentBeforeChange"] = self._image(
                entry.pre, entry, self.before_change, "pre-image", token
            )
        return event

    def _update_document(self, entry: OplogEntry, token: dict[str, str]) -> Any:
        """An update event's fullDocument under the stream's option (MISSING for default)."""
        if entry.op != "u" or self.full_document == "default":
            return MISSING
        if self.full_document == "updateLookup":
            return self.host.lookup_document(entry.ns, entry.key or {})
        return self._image(entry.doc, entry, self.full_document, "post-image", token)

    @staticmethod
    def _image(
        stored: dict[str, Any] | None,
        entry: OplogEntry,
        mode: str,
        what: str,
        token: dict[str, str],
    ) -> dict[str, Any] | None:
        """A recorded image, if the collection recorded images at write time; 47 if required."""
        image = stored if entry.pre_images else None
        if image is None and mode == "required":
            raise MongoError(
                47,
                f"Change stream was configured to require a {what} for all update, delete "
                f"and replace events, but the {what} was not found for event: {token}",
            )
        return image

    def _user_pipeline(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The user's stages over rendered events, run once for the lot (hot path: one
        pipeline set-up per batch, not per event). The stages allowed here map each
        event to at most one, in order, so each result is matched to its event."""
        if not self.stages or not events:
            return events
        out = self.host.run_event_pipeline(events, self.stages)
        given = iter(events)
        for result in out:
            token = result.get("_id")
            if not any(token == event["_id"] for event in given):
                raise MongoError(280, _ID_MODIFIED)
        return out

    def _piped(self, events: list[dict[str, Any]]) -> list[Mapping[str, Any]]:
        """Events through the user's stages, each then fitted to the 16 MiB limit."""
        return [part for event in self._user_pipeline(events) for part in self._fit(event)]

    def _fit(self, event: dict[str, Any]) -> list[Mapping[str, Any]]:
        """An event within the 16 MiB limit as it is; a larger one split into fragments by
        $changeStreamSplitLargeEvent, or else BSONObjectTooLarge (10334), as mongod
        (change_stream_split_event_helpers.cpp: top-level fields fill fragments in order,
        each with ``splitEvent: {fragment, of}``). All fragments carry the event's resume
        token: resuming from a fragment resumes after the whole event."""
        encoded = bson.encode(event, codec_options=CODEC_OPTIONS)
        size = len(encoded)
        if size <= MAX_EVENT_BYTES:
            # The reply carries these bytes as they are, so each event is encoded once.
            return [RawBSONDocument(encoded)]
        if not self.split:
            raise MongoError(
                10334,
                f"Executor error during getMore :: caused by :: BSONObj size: {size} "
                f"({size:#x}) is invalid. Size must be between 0 and 16793600(16MB)",
            )
        fragments: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        room = MAX_EVENT_BYTES - len(bson.encode({"_id": event["_id"]})) - 64
        used = 0
        for key, value in event.items():
            if key == "_id":
                continue
            field_size = len(bson.encode({key: value}))
            if current and used + field_size > room:
                fragments.append(current)
                current, used = {}, 0
            current[key] = value
            used += field_size
        fragments.append(current)
        return [
            {"_id": event["_id"], "splitEvent": {"fragment": i, "of": len(fragments)}, **part}
            for i, part in enumerate(fragments, 1)
        ]

    # -- batches ---------------------------------------------------------------------
    def _entries_after(self, bound: Timestamp | None) -> Iterator[tuple[Position, OplogEntry]]:
        """Each entry after ``position`` (up to ``bound``, the commit point, when given),
        with its own position."""
        time, inc, index = self.position
        slots = self.host.oplog.keyed_slots_after(Timestamp(time, inc), inclusive=True)
        if bound is not None:
            limit = (bound.time, bound.inc)
            slots = itertools.takewhile(lambda keyed: keyed[0] <= limit, slots)
        for (t, i), slot in slots:
            # Only the slot at ``position`` itself holds entries at or before it.
            at_start = t == time and i == inc
            for entry in slot.entries:
                if not at_start or entry.txn_index > index:
                    yield (t, i, entry.txn_index), entry

    def _scan(self, limit: int) -> list[Mapping[str, Any]]:
        events: list[Mapping[str, Any]] = []
        if self._pending_invalidate is not None:
            return self._emit_invalidate(events)
        # Rendered events wait in ``pending`` until as many as the batch still needs are
        # there, then go through the user pipeline together; an event the pipeline
        # drops makes room, so scanning goes on. ``position`` is the last entry scanned,
        # which is the last entry of a full batch, as when events were piped one by one.
        pending: list[dict[str, Any]] = []
        # mongod's change streams read majority-committed data only: an event past the
        # commit point waits for it (it may yet be rolled back). A lone mongosim's last
        # write is committed, so there the bound is the whole oplog (None).
        bound = self.host.visible_ts()
        for position, entry in self._entries_after(bound):
            self.position = position
            if entry.op == "n" or not self._in_scope(entry):
                continue
            if self._pushdown.admits(entry):
                event = self._render(entry)
                if event is not None:
                    pending.append(event)
            # Filtered out or not, a drop still invalidates the stream.
            if self._invalidates(entry):
                events += self._piped(pending)
                self._pending_invalidate = entry
                if len(events) < limit:
                    return self._emit_invalidate(events)
                break
            if len(events) + len(pending) >= limit:
                events += self._piped(pending)
                pending = []
                if len(events) >= limit:
                    break
        else:
            events += self._piped(pending)
            last = self.host.oplog.last_ts if bound is None else bound
            self.position = max(self.position, (last.time, last.inc, 0xFFFFFFFF))
        self._update_token(events)
        return events

    def _emit_invalidate(self, events: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        entry = self._pending_invalidate
        assert entry is not None
        token = self._token(entry, invalidate=True)
        events.append(invalidate_event(entry, token))
        self.post_batch_resume_token = token
        self.closed = True
        return events

    def _update_token(self, events: list[Mapping[str, Any]]) -> None:
        time, inc, index = self.position
        if index == 0xFFFFFFFF or not events:
            self.post_batch_resume_token = resume_tokens.high_water_mark(Timestamp(time, inc))
        else:
            self.post_batch_resume_token = dict(events[-1]["_id"])

    async def next_batch(
        self, *, batch_size: int | None, max_await_ms: int | None
    ) -> list[Mapping[str, Any]]:
        if self.closed:
            return []
        limit = batch_size if batch_size is not None else DEFAULT_BATCH
        if limit == 0:
            return []
        loop = asyncio.get_running_loop()
        wait_ms = DEFAULT_AWAIT_MS if max_await_ms is None else max_await_ms
        deadline = loop.time() + wait_ms / 1000
        while True:
            events = self._scan(limit)
            remaining = deadline - loop.time()
            if events or self.closed or remaining <= 0:
                return events
            await self.host.wait_for_news(remaining)

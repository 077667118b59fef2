"""The one MongoDB client per process, and every driver call the service makes.

Nothing outside :mod:`streamer.mongo` imports Motor or PyMongo (an import-linter
contract; bson's plain values also come from :mod:`streamer.core.values`): the service
reaches the database through :class:`Mongo`, built from plain :class:`MongoOptions`,
whose every driver call translates driver exceptions into the service's
(:mod:`streamer.mongo.errors`), so no ``PyMongoError`` escapes it. Two drivers sit
behind it, chosen by ``MongoOptions.driver``: Motor (``AsyncIOMotorClient``, the
default) and PyMongo's native async client (``pymongo.AsyncMongoClient``). Their APIs
match except for which calls return awaitables (Motor's ``start_session`` is a
coroutine and ``start_transaction`` is not; PyMongo's are the other way round), which
:func:`_resolve` absorbs.

Lifecycle (the guide's rules): created once at start-up, pinged, closed at shutdown;
a closed client refuses to reopen.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog
from bson import Timestamp
from bson.codec_options import CodecOptions
from pymongo import ReadPreference, ReturnDocument, WriteConcern
from pymongo.read_concern import ReadConcern
from pymongo.server_api import ServerApi

from ..core.errors import DatabaseError, DatabaseUnavailable, TransientError
from .errors import driver_errors
from .monitoring import CommandListener, CommandObserver
from .options import MongoOptions
from .retries import retry_commit

log = structlog.get_logger("streamer.mongo")

T = TypeVar("T")
Document = dict[str, Any]


class Session(Protocol):
    """What the service uses of a driver session (Motor's and PyMongo's alike).

    Pass it back to :class:`Mongo`'s calls; end it with :meth:`Mongo.end_session`, so
    that a failure there is translated like any other.
    """

    @property
    def session_id(self) -> Mapping[str, Any]: ...

    @property
    def in_transaction(self) -> bool: ...

    async def end_session(self) -> None: ...

    async def commit_transaction(self) -> None: ...

    async def abort_transaction(self) -> None: ...


@dataclass(frozen=True, slots=True)
class UpdateResult:
    """What an update did (the driver's result, as the service's own type)."""

    matched_count: int
    modified_count: int
    upserted_id: Any = None


CODEC_OPTIONS: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=dt.UTC)
MAJORITY = WriteConcern("majority")


class State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


async def _resolve(value: T | Any) -> Any:
    """Await ``value`` if the driver handed back an awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def client_options(opts: MongoOptions, listener: CommandListener) -> dict[str, Any]:
    """Keyword arguments for the driver's client, from the guide's connection options."""
    options: dict[str, Any] = {
        "maxPoolSize": opts.max_pool_size,
        "minPoolSize": opts.min_pool_size,
        "serverSelectionTimeoutMS": opts.server_selection_timeout_ms,
        "connectTimeoutMS": opts.connect_timeout_ms,
        "socketTimeoutMS": opts.socket_timeout_ms,
        "appname": "streamer",
        "retryWrites": True,
        "retryReads": True,
        "event_listeners": [listener],
        "tz_aware": True,
    }
    if opts.server_api_version is not None:
        options["server_api"] = ServerApi(opts.server_api_version)
    if opts.tls:
        options["tls"] = True
        if opts.tls_ca_file is not None:
            options["tlsCAFile"] = str(opts.tls_ca_file)
        if opts.tls_certificate_key_file is not None:
            options["tlsCertificateKeyFile"] = str(opts.tls_certificate_key_file)
        if opts.tls_allow_invalid_certificates:
            options["tlsAllowInvalidCertificates"] = True
    return options


def _make_client(driver: str, uri: str, options: dict[str, Any]) -> Any:
    if driver == "pymongo":
        from pymongo import AsyncMongoClient

        return AsyncMongoClient(uri, **options)
    from motor.motor_asyncio import AsyncIOMotorClient

    return AsyncIOMotorClient(uri, **options)


class Mongo:
    """The service's database: one client, the configured database, the calls we make."""

    def __init__(
        self,
        options: MongoOptions,
        observers: list[CommandObserver] | None = None,
        listeners: list[Any] | None = None,
    ):
        self.options = options
        self.listener = CommandListener(options.slow_command_ms, observers)
        self.extra_listeners = list(listeners or [])
        self.state = State.UNOPENED
        self._client: Any = None
        self._db: Any = None

    # -- lifecycle ------------------------------------------------------------------
    async def connect(self) -> None:
        """Create the client and ping the primary once; DatabaseUnavailable if unreachable.

        For the one-shot commands: they fail after one server selection timeout. The
        service retries instead (``Service._connect``).
        """
        self.open()
        try:
            await self.ping()
        except TransientError as exc:
            raise DatabaseUnavailable(f"connect: {exc.reason}") from exc

    def open(self) -> None:
        """Create the client (it connects in the background); see :meth:`connect`."""
        if self.state is not State.UNOPENED:
            raise RuntimeError(f"Mongo client is {self.state.value}; create a new one")
        options = client_options(self.options, self.listener)
        options["event_listeners"] += self.extra_listeners
        self._client = _make_client(self.options.driver, self.options.uri, options)
        self._db = self._client.get_database(
            self.options.database,
            codec_options=CODEC_OPTIONS,
            read_preference=ReadPreference.PRIMARY,
            write_concern=MAJORITY,
        )
        self.state = State.OPEN

    async def close(self) -> None:
        if self.state is State.OPEN:
            self.state = State.CLOSED
            with driver_errors():
                await _resolve(self._client.close())
        self.state = State.CLOSED

    async def __aenter__(self) -> Mongo:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def database_name(self) -> str:
        return self.options.database

    def _coll(self, name: str) -> Any:
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        return self._db[name]

    # -- commands ---------------------------------------------------------------------
    async def ping(self) -> None:
        with driver_errors():
            await self._client.admin.command("ping")

    async def command(
        self, cmd: Mapping[str, Any], *, session: Session | None = None, admin: bool = False
    ) -> Document:
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        target = self._client.admin if admin else self._db
        with driver_errors():
            reply: Document = await target.command(
                dict(cmd), session=session, codec_options=CODEC_OPTIONS
            )
        return reply

    # -- reads --------------------------------------------------------------------------
    async def find(
        self,
        coll: str,
        filter: Mapping[str, Any],
        *,
        projection: Mapping[str, Any] | None = None,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        session: Session | None = None,
    ) -> list[Document]:
        collection = self._coll(coll)
        with driver_errors():
            cursor = collection.find(
                dict(filter), projection=projection, sort=sort, limit=limit, session=session
            )
            docs: list[Document] = await cursor.to_list(None)
        return docs

    async def find_one(
        self, coll: str, filter: Mapping[str, Any], *, session: Session | None = None
    ) -> Document | None:
        collection = self._coll(coll)
        with driver_errors():
            doc: Document | None = await collection.find_one(dict(filter), session=session)
        return doc

    async def aggregate(
        self, coll: str, pipeline: Sequence[Mapping[str, Any]], *, session: Session | None = None
    ) -> list[Document]:
        collection = self._coll(coll)
        with driver_errors():
            cursor = await _resolve(collection.aggregate(list(pipeline), session=session))
            docs: list[Document] = await cursor.to_list(None)
        return docs

    async def count(self, coll: str, filter: Mapping[str, Any]) -> int:
        collection = self._coll(coll)
        with driver_errors():
            n: int = await collection.count_documents(dict(filter))
        return n

    async def oldest_oplog_time(self) -> Timestamp | None:
        """The timestamp of the oldest oplog entry (needs read on local.oplog.rs)."""
        oplog = self._client.get_database("local", codec_options=CODEC_OPTIONS)["oplog.rs"]
        with driver_errors():
            cursor = oplog.find({}, {"ts": 1, "_id": 0}).sort("$natural", 1).limit(1)
            docs = await cursor.to_list(1)
        return docs[0]["ts"] if docs else None

    # -- writes -------------------------------------------------------------------------
    async def bulk_write(
        self,
        coll: str,
        requests: Sequence[Any],
        *,
        session: Session | None = None,
        ordered: bool = True,
    ) -> None:
        """Run the write requests (:mod:`streamer.mongo.types`' InsertOne, ReplaceOne…)."""
        if not requests:
            return
        collection = self._coll(coll)
        with driver_errors():
            await collection.bulk_write(list(requests), ordered=ordered, session=session)

    async def insert_many(
        self, coll: str, docs: Sequence[Mapping[str, Any]], *, session: Session | None = None
    ) -> None:
        if docs:
            collection = self._coll(coll)
            with driver_errors():
                await collection.insert_many([dict(d) for d in docs], session=session)

    async def update_one(
        self,
        coll: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        session: Session | None = None,
    ) -> UpdateResult:
        collection = self._coll(coll)
        with driver_errors():
            result = await collection.update_one(
                dict(filter), update, upsert=upsert, session=session
            )
        return UpdateResult(
            matched_count=int(result.matched_count),
            modified_count=int(result.modified_count),
            upserted_id=result.upserted_id,
        )

    async def update_many(
        self,
        coll: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        session: Session | None = None,
    ) -> UpdateResult:
        collection = self._coll(coll)
        with driver_errors():
            result = await collection.update_many(dict(filter), update, session=session)
        return UpdateResult(
            matched_count=int(result.matched_count),
            modified_count=int(result.modified_count),
            upserted_id=result.upserted_id,
        )

    async def find_one_and_update(
        self,
        coll: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        session: Session | None = None,
    ) -> Document | None:
        collection = self._coll(coll)
        with driver_errors():
            doc: Document | None = await collection.find_one_and_update(
                dict(filter),
                update,
                upsert=upsert,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
        return doc

    async def delete_many(
        self, coll: str, filter: Mapping[str, Any], *, session: Session | None = None
    ) -> int:
        collection = self._coll(coll)
        with driver_errors():
            result = await collection.delete_many(dict(filter), session=session)
        return int(result.deleted_count)

    # -- catalog --------------------------------------------------------------------------
    async def list_collections(self) -> list[Document]:
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        with driver_errors():
            cursor = await _resolve(self._db.list_collections())
            docs: list[Document] = await cursor.to_list(None)
        return docs

    async def list_indexes(self, coll: str) -> list[Document]:
        collection = self._coll(coll)
        with driver_errors():
            cursor = await _resolve(collection.list_indexes())
            docs: list[Document] = await cursor.to_list(None)
        return docs

    # -- sessions and transactions ----------------------------------------------------------
    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An explicit session (a cursor must be read in the session that opened it)."""
        session = await self.start_session()
        try:
            yield session
        finally:
            await self.end_session(session)

    async def start_session(self) -> Session:
        """A long-lived explicit session; the caller ends it (:meth:`end_session`)."""
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        with driver_errors():
            session: Session = await _resolve(self._client.start_session())
        return session

    async def end_session(self, session: Session) -> None:
        with driver_errors():
            await session.end_session()

    async def kill_sessions(self, lsids: Sequence[Mapping[str, Any]]) -> None:
        """killSessions: abort whatever those sessions left open (their locks go with it)."""
        await self.command({"killSessions": [dict(lsid) for lsid in lsids]}, admin=True)

    @asynccontextmanager
    async def transaction(self, session: Session | None = None) -> AsyncIterator[Session]:
        """A snapshot, majority-committed transaction: commits on exit, aborts on error.

        Runs in ``session`` when given (a long-lived session the caller owns), else in a
        fresh one. A failed commit raises TransientError (TransientTransactionError)
        or UnknownCommitResult once retrying the commit in place ran out of budget;
        the caller decides whether to run the whole transaction again.
        """
        if session is not None:
            async with self._transaction_in(session) as s:
                yield s
            return
        async with self.session() as fresh, self._transaction_in(fresh) as s:
            yield s

    @asynccontextmanager
    async def _transaction_in(self, session: Session) -> AsyncIterator[Session]:
        with driver_errors():
            await _resolve(
                session.start_transaction(  # type: ignore[attr-defined]
                    read_concern=ReadConcern("snapshot"),
                    write_concern=MAJORITY,
                    read_preference=ReadPreference.PRIMARY,
                )
            )
        try:
            yield session
        except BaseException:
            if session.in_transaction:
                await self._abort(session)
            raise
        await retry_commit(self._commit_once(session), policy=self.options.retry)

    async def _abort(self, session: Session) -> None:
        """Abort after a failure; an abort that fails too must not hide the first error."""
        try:
            with driver_errors():
                await session.abort_transaction()
        except DatabaseError as exc:
            log.warning("mongo.abort_failed", error=exc.reason)

    def _commit_once(self, session: Session) -> Callable[[], Awaitable[None]]:
        async def commit() -> None:
            with driver_errors():
                await session.commit_transaction()

        return commit

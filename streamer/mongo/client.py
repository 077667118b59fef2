"""The one MongoDB client per process, and every driver call the service makes.

Nothing else in the service imports Motor or PyMongo's client classes: they reach the
database through :class:`Mongo`. Two drivers sit behind it, chosen by
``settings.driver``: Motor (``AsyncIOMotorClient``, the default) and PyMongo's native
async client (``pymongo.AsyncMongoClient``). Their APIs match except for which calls
return awaitables (Motor's ``start_session`` is a coroutine and ``start_transaction``
is not; PyMongo's are the other way round), which :func:`_resolve` absorbs.

Lifecycle (the guide's rules): created once at start-up, pinged, closed at shutdown;
a closed client refuses to reopen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import inspect
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from bson import Timestamp
from bson.codec_options import CodecOptions
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import ConnectionFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.results import BulkWriteResult, UpdateResult
from pymongo.server_api import ServerApi

from ..errors import DatabaseUnavailable
from ..settings import Settings
from .monitoring import CommandListener, CommandObserver

log = structlog.get_logger("streamer.mongo")

T = TypeVar("T")
Document = dict[str, Any]
Session = Any  # the driver's session object; opaque outside this module

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


def client_options(settings: Settings, listener: CommandListener) -> dict[str, Any]:
    """Keyword arguments for the driver's client, from the guide's connection options."""
    options: dict[str, Any] = {
        "maxPoolSize": settings.max_pool_size,
        "minPoolSize": settings.min_pool_size,
        "serverSelectionTimeoutMS": settings.server_selection_timeout_ms,
        "connectTimeoutMS": settings.connect_timeout_ms,
        "socketTimeoutMS": settings.socket_timeout_ms,
        "appname": "streamer",
        "retryWrites": True,
        "retryReads": True,
        "event_listeners": [listener],
        "tz_aware": True,
    }
    if settings.server_api_version is not None:
        options["server_api"] = ServerApi(settings.server_api_version)
    if settings.tls:
        options["tls"] = True
        if settings.tls_ca_file is not None:
            options["tlsCAFile"] = str(settings.tls_ca_file)
        if settings.tls_certificate_key_file is not None:
            options["tlsCertificateKeyFile"] = str(settings.tls_certificate_key_file)
        if settings.tls_allow_invalid_certificates:
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
        settings: Settings,
        observers: list[CommandObserver] | None = None,
        listeners: list[Any] | None = None,
    ):
        self.settings = settings
        self.listener = CommandListener(settings.slow_command_ms, observers)
        self.extra_listeners = list(listeners or [])
        self.state = State.UNOPENED
        self._client: Any = None
        self._db: Any = None

    # -- lifecycle ------------------------------------------------------------------
    async def connect(self) -> None:
        """Create the client and ping the primary; DatabaseUnavailable if unreachable."""
        self.open()
        try:
            await self.ping()
        except ConnectionFailure as exc:  # ServerSelectionTimeoutError is one
            raise DatabaseUnavailable(f"connect: {type(exc).__name__}") from exc

    def open(self) -> None:
        """Create the client (it connects in the background); see :meth:`connect`."""
        if self.state is not State.UNOPENED:
            raise RuntimeError(f"Mongo client is {self.state.value}; create a new one")
        options = client_options(self.settings, self.listener)
        options["event_listeners"] += self.extra_listeners
        self._client = _make_client(
            self.settings.driver, self.settings.mongodb_uri.get_secret_value(), options
        )
        self._db = self._client.get_database(
            self.settings.database,
            codec_options=CODEC_OPTIONS,
            read_preference=ReadPreference.PRIMARY,
            write_concern=MAJORITY,
        )
        self.state = State.OPEN

    async def close(self) -> None:
        if self.state is State.OPEN:
            self.state = State.CLOSED
            await _resolve(self._client.close())
        self.state = State.CLOSED

    async def __aenter__(self) -> Mongo:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def database_name(self) -> str:
        return self.settings.database

    def _coll(self, name: str) -> Any:
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        return self._db[name]

    # -- commands ---------------------------------------------------------------------
    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def command(
        self, cmd: Mapping[str, Any], *, session: Session = None, admin: bool = False
    ) -> Document:
        target = self._client.admin if admin else self._db
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
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
        session: Session = None,
    ) -> list[Document]:
        cursor = self._coll(coll).find(
            dict(filter), projection=projection, sort=sort, limit=limit, session=session
        )
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def find_one(
        self, coll: str, filter: Mapping[str, Any], *, session: Session = None
    ) -> Document | None:
        doc: Document | None = await self._coll(coll).find_one(dict(filter), session=session)
        return doc

    async def aggregate(
        self, coll: str, pipeline: Sequence[Mapping[str, Any]], *, session: Session = None
    ) -> list[Document]:
        cursor = await _resolve(self._coll(coll).aggregate(list(pipeline), session=session))
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def count(self, coll: str, filter: Mapping[str, Any]) -> int:
        n: int = await self._coll(coll).count_documents(dict(filter))
        return n

    async def oldest_oplog_time(self) -> Timestamp | None:
        """The timestamp of the oldest oplog entry (needs read on local.oplog.rs)."""
        oplog = self._client.get_database("local", codec_options=CODEC_OPTIONS)["oplog.rs"]
        docs = await oplog.find({}, {"ts": 1, "_id": 0}).sort("$natural", 1).limit(1).to_list(1)
        return docs[0]["ts"] if docs else None

    # -- writes -------------------------------------------------------------------------
    async def bulk_write(
        self, coll: str, requests: Sequence[Any], *, session: Session = None, ordered: bool = True
    ) -> BulkWriteResult | None:
        if not requests:
            return None
        result: BulkWriteResult = await self._coll(coll).bulk_write(
            list(requests), ordered=ordered, session=session
        )
        return result

    async def insert_many(
        self, coll: str, docs: Sequence[Mapping[str, Any]], *, session: Session = None
    ) -> None:
        if docs:
            await self._coll(coll).insert_many([dict(d) for d in docs], session=session)

    async def update_one(
        self,
        coll: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        session: Session = None,
    ) -> UpdateResult:
        result: UpdateResult = await self._coll(coll).update_one(
            dict(filter), update, upsert=upsert, session=session
        )
        return result

    async def find_one_and_update(
        self,
        coll: str,
        filter: Mapping[str, Any],
        update: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        upsert: bool = False,
        session: Session = None,
    ) -> Document | None:
        from pymongo import ReturnDocument

        doc: Document | None = await self._coll(coll).find_one_and_update(
            dict(filter),
            update,
            upsert=upsert,
            return_document=ReturnDocument.AFTER,
            session=session,
        )
        return doc

    async def delete_many(
        self, coll: str, filter: Mapping[str, Any], *, session: Session = None
    ) -> int:
        result = await self._coll(coll).delete_many(dict(filter), session=session)
        return int(result.deleted_count)

    # -- catalog --------------------------------------------------------------------------
    async def list_collections(self) -> list[Document]:
        cursor = await _resolve(self._db.list_collections())
        docs: list[Document] = await cursor.to_list(None)
        return docs

    async def list_indexes(self, coll: str) -> list[Document]:
        cursor = await _resolve(self._coll(coll).list_indexes())
        docs: list[Document] = await cursor.to_list(None)
        return docs

    # -- sessions and transactions ----------------------------------------------------------
    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """An explicit session (a cursor must be read in the session that opened it)."""
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        session = await _resolve(self._client.start_session())
        try:
            yield session
        finally:
            await session.end_session()

    async def start_session(self) -> Session:
        """A long-lived explicit session; the caller ends it (``await s.end_session()``)."""
        if self.state is not State.OPEN:
            raise RuntimeError("Mongo client is not open")
        return await _resolve(self._client.start_session())

    async def kill_sessions(self, lsids: Sequence[Mapping[str, Any]]) -> None:
        """killSessions: abort whatever those sessions left open (their locks go with it)."""
        await self.command({"killSessions": [dict(lsid) for lsid in lsids]}, admin=True)

    @asynccontextmanager
    async def transaction(self, session: Session = None) -> AsyncIterator[Session]:
        """A snapshot, majority-committed transaction: commits on exit, aborts on error.

        Runs in ``session`` when given (a long-lived session the caller owns), else in a
        fresh one. A failed commit raises the driver's error with its labels
        (TransientTransactionError, UnknownTransactionCommitResult); the caller decides
        whether to run the whole transaction again.
        """
        if session is not None:
            async with self._transaction_in(session) as s:
                yield s
            return
        async with self.session() as fresh, self._transaction_in(fresh) as s:
            yield s

    @asynccontextmanager
    async def _transaction_in(self, session: Session) -> AsyncIterator[Session]:
        await _resolve(
            session.start_transaction(
                read_concern=ReadConcern("snapshot"),
                write_concern=MAJORITY,
                read_preference=ReadPreference.PRIMARY,
            )
        )
        try:
            yield session
        except BaseException:
            if session.in_transaction:
                await session.abort_transaction()
            raise
        await self._commit(session)

    async def _commit(self, session: Session) -> None:
        """Commit, retrying the commit itself while its outcome is unknown.

        A commit that failed with UnknownTransactionCommitResult (a network error, a
        stepdown) may or may not have applied, and the transaction is still open on the
        server, holding its writes: running it again would conflict with itself. The
        Transactions specification's answer is to retry commitTransaction, which is
        idempotent. An error without that label means the transaction is over; the
        caller then runs it again from the start.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.retry_max_s
        delay = 0.05
        while True:
            try:
                await session.commit_transaction()
                return
            except PyMongoError as exc:
                if not exc.has_error_label("UnknownTransactionCommitResult"):
                    raise
                if loop.time() + delay > deadline:
                    raise
                log.warning("mongo.commit_retry", reason=type(exc).__name__, wait_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

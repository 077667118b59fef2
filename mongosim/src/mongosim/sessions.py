"""Logical sessions, retryable writes and multi-document transactions.

A transaction reads from a snapshot and buffers its writes. Snapshot isolation without
copying the database: when anyone commits a write to a document, every *other* open
transaction that has not yet seen that document keeps its pre-write version in
``snapshot`` (copy on first foreign write). A transaction writing a document that changed
after its snapshot, or that another transaction has written, fails with WriteConflict
(112) as on mongod (src/mongo/db/concurrency/exception_util.h: writeConflictException).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.timestamp import Timestamp

from .bsonutil import canonical
from .errors import MongoError
from .oplog import OpKind
from .storage import TxnVersions

DocKey = tuple[str, Hashable]  # (ns, canonical _id)

# mongod's transactionLifetimeLimitSeconds default.
TRANSACTION_LIFETIME_S = 60.0


class TxnState(enum.Enum):
    NONE = "none"
    IN_PROGRESS = "in progress"
    COMMITTED = "committed"
    ABORTED = "aborted"


@dataclass(slots=True)
class PendingWrite:
    """One buffered write of a transaction, replayed in order at commit."""

    ns: str
    idk: Hashable
    op: OpKind  # "i", "u", "r", "d"
    doc: dict[str, Any] | None
    pre: dict[str, Any] | None
    update_description: dict[str, Any] | None = None


@dataclass(slots=True)
class Transaction:
    txn_number: int
    snapshot_ts: Timestamp
    started: float = field(default_factory=time.monotonic)
    # Latest version of each document this transaction wrote (None = deleted).
    overlay: dict[DocKey, dict[str, Any] | None] = field(default_factory=dict)
    # The same versions by namespace, kept as writes arrive: a unique index check reads
    # one collection's versions once per write, so deriving them from ``overlay`` each
    # time would cost a pass over the whole transaction per write.
    overlay_by_ns: dict[str, TxnVersions] = field(default_factory=dict)
    # Versions as of the snapshot of documents others changed since (None = absent then).
    snapshot: dict[DocKey, dict[str, Any] | None] = field(default_factory=dict)
    writes: list[PendingWrite] = field(default_factory=list)

    def expired(self) -> bool:
        return time.monotonic() - self.started > TRANSACTION_LIFETIME_S


@dataclass(slots=True)
class Session:
    lsid: dict[str, Any]
    txn_number: int = -1
    state: TxnState = TxnState.NONE
    txn: Transaction | None = None
    # Retryable writes: the reply of the last txnNumber executed, replayed on a retry.
    retry_replies: dict[int, dict[str, Any]] = field(default_factory=dict)
    # A retryable write cut short (its connection closed by a fail point): txnNumber ->
    # (statements executed, the reply so far). Its retry runs only the statements left,
    # as mongod skips the stmtIds it has already executed.
    partial: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)


def lsid_key(lsid: Mapping[str, Any]) -> Hashable:
    ident = lsid.get("id")
    if isinstance(ident, bytes) and len(lsid) == 1:
        return bytes(ident)  # the common case: {id: UUID}, hashed without canonicalising
    return canonical(dict(lsid))


def no_such_transaction(txn_number: int, why: str = "") -> MongoError:
    msg = why or f"Transaction with {{ txnNumber: {txn_number} }} has been aborted."
    return MongoError(251, msg)


class SessionCatalog:
    """Every live session, and the document locks held by open transactions."""

    def __init__(self) -> None:
        self.sessions: dict[Hashable, Session] = {}
        self.locks: dict[DocKey, Transaction] = {}
        self.open: set[int] = set()  # id() of open Transaction objects
        self._open_txns: dict[int, Transaction] = {}

    def get(self, lsid: Mapping[str, Any]) -> Session:
        key = lsid_key(lsid)
        session = self.sessions.get(key)
        if session is None:
            session = self.sessions[key] = Session(dict(lsid))
        session.last_used = time.monotonic()
        return session

    def end(self, lsid: Mapping[str, Any]) -> None:
        session = self.sessions.pop(lsid_key(lsid), None)
        if session is not None and session.txn is not None:
            self.abort(session)

    def kill_all(self) -> None:
        """killAllSessions: abort every open transaction; the session records stay."""
        for session in self.sessions.values():
            if session.txn is not None:
                self.abort(session)

    # -- transaction lifecycle ------------------------------------------------
    def begin(self, session: Session, txn_number: int, snapshot_ts: Timestamp) -> Transaction:
        if session.txn is not None and session.state is TxnState.IN_PROGRESS:
            self.abort(session)
        txn = Transaction(txn_number, snapshot_ts)
        session.txn_number = txn_number
        session.state = TxnState.IN_PROGRESS
        session.txn = txn
        self._open_txns[id(txn)] = txn
        return txn

    def abort(self, session: Session) -> None:
        txn = session.txn
        if txn is not None:
            self.release(txn)
        session.txn = None
        session.state = TxnState.ABORTED

    def finish_commit(self, session: Session) -> None:
        txn = session.txn
        if txn is not None:
            self.release(txn)
        session.txn = None
        session.state = TxnState.COMMITTED

    def release(self, txn: Transaction) -> None:
        self._open_txns.pop(id(txn), None)
        for key in [k for k, owner in self.locks.items() if owner is txn]:
            del self.locks[key]

    def open_transactions(self) -> list[Transaction]:
        return list(self._open_txns.values())

    def reap_expired(self) -> None:
        """Abort transactions older than transactionLifetimeLimitSeconds."""
        for session in list(self.sessions.values()):
            if session.txn is not None and session.txn.expired():
                self.abort(session)

    # -- snapshot isolation -----------------------------------------------------
    def before_commit_write(
        self, key: DocKey, current: dict[str, Any] | None, writer: Transaction | None
    ) -> None:
        """Called before a committed write to ``key``: preserve snapshots of other txns."""
        for txn in self._open_txns.values():
            if txn is not writer and key not in txn.snapshot and key not in txn.overlay:
                txn.snapshot[key] = current

    def lock_for(self, txn: Transaction, key: DocKey) -> None:
        """Claim a document for a transaction's write, or fail with WriteConflict."""
        owner = self.locks.get(key)
        if (owner is not None and owner is not txn) or key in txn.snapshot:
            raise MongoError(
                112,
                "Caused by :: Write conflict during plan execution and yielding is disabled. "
                ":: Please retry your write operation or multi-document transaction.",
                labels=["TransientTransactionError"],
            )
        self.locks[key] = txn

    def locked_by_other(self, key: DocKey, txn: Transaction | None) -> Transaction | None:
        owner = self.locks.get(key)
        return owner if owner is not None and owner is not txn else None

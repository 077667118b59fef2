"""One command's execution context, and how a command joins its session and transaction.

:class:`CommandContext` carries what the connection layer knows; :class:`Op` adds the
session and transaction :func:`prepare_op` resolves. Rules from the server
(src/mongo/db/transaction/transaction_participant.cpp) and the transactions spec: a
statement with ``autocommit: false`` belongs to transaction ``txnNumber`` of its session;
the first one carries ``startTransaction: true``. A retried write with the same
``txnNumber`` outside a transaction is answered from the first execution's reply instead
of being applied again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bson.timestamp import Timestamp

from .errors import MongoError
from .failpoints import FailPoints
from .oplog import Oplog
from .registry import Command
from .sessions import Session, SessionCatalog, Transaction, TxnState, no_such_transaction

Reply = dict[str, Any]


@dataclass(slots=True)
class CommandContext:
    """Per-command facts the engine needs from the connection layer."""

    connection_id: int
    app_name: str | None
    failpoints: FailPoints | None = None
    operation_time: Timestamp | None = None  # set by the engine to the ts of what it wrote
    is_change_stream: bool = False  # set by the engine for change-stream aggregate/getMore
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Op:
    """One command's execution context: connection, session and transaction."""

    ctx: CommandContext
    session: Session | None = None
    txn: Transaction | None = None
    txn_number: int | None = None

    @property
    def in_txn(self) -> bool:
        return self.txn is not None


class SessionHost(Protocol):
    """What :func:`prepare_op` needs of the engine."""

    @property
    def sessions(self) -> SessionCatalog: ...

    @property
    def oplog(self) -> Oplog: ...

    def notify_locks_released(self) -> None: ...


def prepare_op(
    engine: SessionHost, command: Command, cmd: dict[str, Any], ctx: CommandContext
) -> tuple[Op, Reply | None]:
    """Resolve the command's session and transaction; maybe a stored retry reply."""
    name = command.name
    lsid = cmd.get("lsid")
    if lsid is None:
        return Op(ctx), None
    session = engine.sessions.get(lsid)
    txn_number = cmd.get("txnNumber")
    autocommit = cmd.get("autocommit")
    if autocommit is None:
        if txn_number is None or not command.retryable:
            return Op(ctx, session), None
        return _retryable_write(engine, session, int(txn_number), ctx)
    if autocommit is not False:
        raise MongoError(72, "autocommit must be false when specified")
    if txn_number is None:
        raise MongoError(
            72, "'autocommit' field requires a transaction number to also be specified"
        )
    if not command.in_txn:
        raise MongoError(263, f"Cannot run '{name}' in a multi-document transaction.")
    txn_number = int(txn_number)
    if txn_number < session.txn_number:
        raise MongoError(
            225,
            f"Cannot start transaction {txn_number} on session because a newer transaction "
            f"with txnNumber {session.txn_number} has already started",
        )
    if cmd.get("startTransaction"):
        if txn_number == session.txn_number:
            raise MongoError(
                251,
                f"Given transaction number {txn_number} does not match any in-progress "
                "transactions. The active transaction number is "
                f"{session.txn_number}",
            )
        engine.sessions.reap_expired()
        txn = engine.sessions.begin(session, txn_number, engine.oplog.last_ts)
        return Op(ctx, session, txn, txn_number), None
    if name in ("commitTransaction", "abortTransaction"):
        return Op(ctx, session, session.txn, txn_number), None
    require_open_transaction(engine, session, txn_number)
    return Op(ctx, session, session.txn, txn_number), None


def require_open_transaction(engine: SessionHost, session: Session, txn_number: int) -> None:
    """Raise NoSuchTransaction unless ``txn_number`` is the session's transaction and it
    is in progress; one past its lifetime is aborted first (its locks freed), as mongod's
    reaper would have done."""
    if txn_number != session.txn_number or session.state is not TxnState.IN_PROGRESS:
        raise no_such_transaction(txn_number)
    if session.txn is not None and session.txn.expired():
        engine.sessions.abort(session)
        engine.notify_locks_released()
        raise no_such_transaction(txn_number)


def _retryable_write(
    engine: SessionHost, session: Session, txn_number: int, ctx: CommandContext
) -> tuple[Op, Reply | None]:
    if txn_number < session.txn_number:
        raise MongoError(
            225,
            f"Retryable write with txnNumber {txn_number} is prohibited on session because a "
            f"newer retryable write with txnNumber {session.txn_number} has already started "
            "on this session.",
        )
    if txn_number == session.txn_number and txn_number in session.retry_replies:
        reply = dict(session.retry_replies[txn_number])
        reply["retriedStmtIds"] = []
        return Op(ctx, session, None, txn_number), reply
    if session.state is TxnState.IN_PROGRESS:
        engine.sessions.abort(session)
        engine.notify_locks_released()
    session.txn_number = txn_number
    session.state = TxnState.NONE
    return Op(ctx, session, None, txn_number), None

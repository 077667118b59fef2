"""Sessions, retryable writes and transactions at the command level.

Rules from the server (src/mongo/db/transaction/transaction_participant.cpp) and the
transactions spec: a statement with ``autocommit: false`` belongs to transaction
``txnNumber`` of its session; the first one carries ``startTransaction: true``. A retried
write with the same ``txnNumber`` outside a transaction is answered from the first
execution's reply instead of being applied again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import TXN_COMMANDS, Op
from .errors import MongoError
from .sessions import TxnState, no_such_transaction

if TYPE_CHECKING:
    from .engine import CommandContext, Engine, Reply

RETRYABLE_WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


def prepare_op(
    engine: Engine, name: str, cmd: dict[str, Any], ctx: CommandContext
) -> tuple[Op, Reply | None]:
    """Resolve the command's session and transaction; maybe a stored retry reply."""

    lsid = cmd.get("lsid")
    if lsid is None:
        return Op(ctx), None
    session = engine.sessions.get(lsid)
    txn_number = cmd.get("txnNumber")
    autocommit = cmd.get("autocommit")
    if autocommit is None:
        if txn_number is None or name not in RETRYABLE_WRITE_COMMANDS:
            return Op(ctx, session), None
        return _retryable_write(engine, session, int(txn_number), ctx)
    if autocommit is not False:
        raise MongoError(72, "autocommit must be false when specified")
    if txn_number is None:
        raise MongoError(
            72, "'autocommit' field requires a transaction number to also be specified"
        )
    if name not in TXN_COMMANDS:
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
    if txn_number != session.txn_number or session.state is not TxnState.IN_PROGRESS:
        raise no_such_transaction(txn_number)
    if session.txn is not None and session.txn.expired():
        engine.sessions.abort(session)
        engine.notify_locks_released()
        raise no_such_transaction(txn_number)
    return Op(ctx, session, session.txn, txn_number), None


def _retryable_write(
    engine: Engine, session: Any, txn_number: int, ctx: CommandContext
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


async def cmd_commit_transaction(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    session, n = op.session, op.txn_number
    if session is None or n is None:
        raise MongoError(72, "commitTransaction must be run within a transaction")
    if n == session.txn_number and session.state is TxnState.COMMITTED:
        return {}  # a retried commit of a committed transaction succeeds again
    if n != session.txn_number or session.state is not TxnState.IN_PROGRESS:
        raise no_such_transaction(n)
    if session.txn is not None and session.txn.expired():
        engine.sessions.abort(session)
        engine.notify_locks_released()
        raise no_such_transaction(n)
    engine.commit_transaction(session, op)
    return {}


async def cmd_abort_transaction(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    session, n = op.session, op.txn_number
    if session is None or n is None:
        raise MongoError(72, "abortTransaction must be run within a transaction")
    if n == session.txn_number and session.state is TxnState.COMMITTED:
        raise MongoError(256, "Transaction has been committed; it cannot be aborted")
    if n != session.txn_number or session.state is not TxnState.IN_PROGRESS:
        raise no_such_transaction(n)
    engine.sessions.abort(session)
    engine.notify_locks_released()
    return {}


async def cmd_end_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    for lsid in cmd.get("endSessions") or cmd.get("killSessions") or []:
        engine.sessions.end(lsid)
    engine.notify_locks_released()
    return {}


async def cmd_kill_all_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """killAllSessions / killAllSessionsByPattern (src/mongo/db/commands/kill_all_sessions_
    command.cpp): every session's transaction is aborted. mongosim has no users, so an
    empty or any user pattern matches every session."""
    engine.sessions.kill_all()
    engine.notify_locks_released()
    return {}


async def cmd_refresh_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    return {}


HANDLERS = {
    "commitTransaction": cmd_commit_transaction,
    "abortTransaction": cmd_abort_transaction,
    "endSessions": cmd_end_sessions,
    "killSessions": cmd_end_sessions,
    "killAllSessions": cmd_kill_all_sessions,
    "killAllSessionsByPattern": cmd_kill_all_sessions,
    "refreshSessions": cmd_refresh_sessions,
}

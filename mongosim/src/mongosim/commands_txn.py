"""The session and transaction commands: commit, abort, end, kill and refresh sessions.

How a statement joins its session and transaction (and a retried write's stored reply)
is :func:`mongosim.operation.prepare_op`, which the engine runs before every command.
"""

from __future__ import annotations

from typing import Any

from . import privileges
from .engine import Engine
from .errors import MongoError
from .operation import Op, Reply, require_open_transaction
from .privileges import on_cluster
from .registry import Access, command
from .sessions import TxnState, no_such_transaction


@command("commitTransaction", access=Access.USER, in_txn=True, writes=True)
async def cmd_commit_transaction(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    session, n = op.session, op.txn_number
    if session is None or n is None:
        raise MongoError(72, "commitTransaction must be run within a transaction")
    if n == session.txn_number and session.state is TxnState.COMMITTED:
        return {}  # a retried commit of a committed transaction succeeds again
    require_open_transaction(engine, session, n)
    engine.commit_transaction(session, op)
    return {}


@command("abortTransaction", access=Access.USER, in_txn=True, writes=True)
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


@command("endSessions", access=Access.PUBLIC)
async def cmd_end_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    for lsid in cmd.get("endSessions") or cmd.get("killSessions") or []:
        engine.sessions.end(lsid)
    engine.notify_locks_released()
    return {}


@command("killSessions", access=Access.USER)
async def cmd_kill_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """killSessions ends the named sessions, as endSessions does; whose they may be is
    checked by the auth layer."""
    return await cmd_end_sessions(engine, db, cmd, op)


# Two commands in mongod too (KillAllSessionsCommand, KillAllSessionsByPatternCommand).
# mongod asks killAnySession on the cluster for both (and impersonate for a pattern that
# names users or roles); mongosim asks root for the pattern form.
@command("killAllSessions", needs=on_cluster("killAnySession"))
@command("killAllSessionsByPattern", needs=privileges.root)
async def cmd_kill_all_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    """killAllSessions / killAllSessionsByPattern (src/mongo/db/commands/kill_all_sessions_
    command.cpp): every session's transaction is aborted. mongosim has no users, so an
    empty or any user pattern matches every session."""
    engine.sessions.kill_all()
    engine.notify_locks_released()
    return {}


@command("refreshSessions", access=Access.USER)
async def cmd_refresh_sessions(engine: Engine, db: str, cmd: dict[str, Any], op: Op) -> Reply:
    return {}

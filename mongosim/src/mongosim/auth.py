"""Authentication and authorization, as mongod with ``--auth`` does them.

:class:`Auth` answers ``saslStart``/``saslContinue`` (SCRAM, :mod:`.scram`), the
speculative authentication drivers put in ``hello``, the user and role management
commands (:mod:`.users`) and, before any other command runs, checks that the
connection may run it: its registration (:class:`.registry.Command`) says who may
(``access``) and which privileges it needs (``needs``, built with :mod:`.privileges`;
none declared means root). Without ``--auth`` users can still be created and
used, but nothing is enforced, as with mongod.

Sources: the driver "Authentication" specification (speculative authentication,
``saslSupportedMechs``), the manual's "Localhost Exception", "killSessions" (a user may
kill its own sessions; others' need ``killAnySession``) and mongod's
``src/mongo/db/commands/authentication_commands.cpp``/``sasl_commands.cpp``.

Cursors belong to the users that opened them, as in mongod: ``getMore`` is for those
users only ("cursor id N was not created by the authenticated user",
``src/mongo/db/commands/getmore_cmd.cpp``), while they still hold the privileges of the
command that opened it ("not authorized for getMore with cursor id N"); ``killCursors``
of another's cursor needs ``killAnyCursor`` on its namespace ("not authorized to kill
cursor on <ns>", ``checkAuthForKillCursors`` in
``src/mongo/db/auth/authorization_checks.cpp``).
"""

from __future__ import annotations

import contextlib
import itertools
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.binary import Binary

from . import privileges, scram
from .errors import MongoError
from .registry import Access, Command, Need, Runs, command
from .sessions import lsid_key
from .users import Catalog, credential_of, role_refs

_conversation_ids = itertools.count(1)
UserRef = tuple[str, str]  # (db, name)
Reply = dict[str, Any]
# Owners of the cursors mongosim has handed out; the oldest are forgotten past this many
# (mongod times idle cursors out after 10 minutes; a forgotten one is unchecked).
MAX_TRACKED_CURSORS = 100_000


@dataclass(frozen=True, slots=True)
class CursorOwner:
    ns: str  # "db.collection"
    users: tuple[UserRef, ...]
    needs: tuple[Need, ...]  # what the command that opened it needed


def auth_failed() -> MongoError:
    return MongoError(18, "Authentication failed.", code_name="AuthenticationFailed")


@dataclass
class ConnectionAuth:
    """One connection's authenticated users and SCRAM conversations in progress."""

    loopback: bool = False
    users: list[UserRef] = field(default_factory=list)
    conversations: dict[int, tuple[str, scram.ServerConversation]] = field(default_factory=dict)


class Auth:
    def __init__(self, catalog: Catalog, enabled: bool) -> None:
        self.catalog, self.enabled = catalog, enabled
        self._session_owner: dict[Any, UserRef | None] = {}
        self._cursor_owner: OrderedDict[int, CursorOwner] = OrderedDict()

    # -- hello -----------------------------------------------------------------------
    def decorate_hello(
        self, cmd: Mapping[str, Any], reply: dict[str, Any], conn: ConnectionAuth
    ) -> None:
        mechs = cmd.get("saslSupportedMechs")
        if isinstance(mechs, str) and "." in mechs:
            db, _, name = mechs.partition(".")
            user = self.catalog.users.get((db, name))
            if user is not None:
                reply["saslSupportedMechs"] = sorted(user.get("credentials", {}))
        spec = cmd.get("speculativeAuthenticate")
        if isinstance(spec, Mapping) and "saslStart" in spec:
            # A failed speculative attempt is answered by omitting the field; the driver
            # then authenticates normally and gets the real error (Authentication spec).
            with contextlib.suppress(MongoError):
                reply["speculativeAuthenticate"] = self._sasl_start(
                    str(spec.get("db", "admin")), spec, conn
                )

    # -- SCRAM -----------------------------------------------------------------------
    def _sasl_start(self, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> dict[str, Any]:
        mechanism = cmd.get("mechanism")
        if mechanism not in scram.MECHANISMS:
            raise MongoError(
                334,
                f"Received authentication for mechanism {mechanism} which is not enabled",
                code_name="MechanismUnavailable",
            )

        def lookup(name: str) -> scram.Credential | None:
            user = self.catalog.users.get((db, name))
            return None if user is None else credential_of(user, str(mechanism))

        conversation = scram.ServerConversation(str(mechanism), lookup)
        try:
            payload = conversation.first(bytes(cmd.get("payload") or b""))
        except (scram.ScramError, UnicodeDecodeError, ValueError) as exc:
            raise auth_failed() from exc
        cid = next(_conversation_ids)
        conn.conversations[cid] = (db, conversation)
        return {"conversationId": cid, "done": False, "payload": Binary(payload)}

    def _sasl_continue(self, cmd: Mapping[str, Any], conn: ConnectionAuth) -> dict[str, Any]:
        cid = int(cmd.get("conversationId", 0))
        found = conn.conversations.get(cid)
        if found is None:
            raise MongoError(17, "No SASL session state found", code_name="ProtocolError")
        db, conversation = found
        if conversation.done:  # the empty last step of a non-skipEmptyExchange client
            del conn.conversations[cid]
            return {"conversationId": cid, "done": True, "payload": Binary(b"")}
        try:
            payload = conversation.final(bytes(cmd.get("payload") or b""))
        except (scram.ScramError, UnicodeDecodeError, ValueError) as exc:
            del conn.conversations[cid]
            raise auth_failed() from exc
        assert conversation.user is not None
        if (db, conversation.user) not in conn.users:
            conn.users.append((db, conversation.user))
        # Drivers send options.skipEmptyExchange; mongod then finishes in this step.
        return {"conversationId": cid, "done": True, "payload": Binary(payload)}

    # -- authorization ---------------------------------------------------------------------
    def connection_status(self, conn: ConnectionAuth) -> dict[str, Any]:
        roles = [r for u in conn.users for r in self.catalog.users.get(u, {}).get("roles", [])]
        return {
            "authInfo": {
                "authenticatedUsers": [{"user": n, "db": d} for d, n in conn.users],
                "authenticatedUserRoles": roles,
            }
        }

    def privileges_of(self, conn: ConnectionAuth) -> list[Any]:
        roles = [r for u in conn.users for r in self.catalog.users.get(u, {}).get("roles", [])]
        return self.catalog.privileges_of(roles)

    def _localhost_exception(self, lname: str, conn: ConnectionAuth) -> bool:
        # The manual's "Localhost Exception": over loopback, with no user yet, the first
        # user or role may be created.
        return conn.loopback and not self.catalog.users and lname in ("createuser", "createrole")

    def authorize(
        self, command: Command, name: str, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth
    ) -> None:
        """Refuse the command unless the connection may run it (nothing without --auth):
        who may run it and what it needs are its registration's (``access``, ``needs``)."""
        lname, access = name.lower(), command.access
        if not self.enabled or access is Access.PUBLIC or self._localhost_exception(lname, conn):
            return
        if not conn.users:
            raise MongoError(13, f"Command {name} requires authentication")
        self._own_session(cmd, conn)
        if lname == "getmore":
            self._check_get_more(cmd, conn)
            return
        if lname == "killcursors":
            self._check_kill_cursors(cmd, conn)
            return
        if access is Access.USER:
            if lname == "killsessions":
                self._check_kill_sessions(cmd, conn)
            return
        granted = self.privileges_of(conn)
        for resource, action in needs_of(command, db, cmd):
            if not privileges.allowed(granted, resource, action):
                raise MongoError(
                    13, f"not authorized on {db} to execute command {privileges.shell_repr(cmd)}"
                )

    # -- cursors ------------------------------------------------------------------------
    def note_reply(
        self,
        command: Command,
        name: str,
        db: str,
        cmd: Mapping[str, Any],
        reply: Mapping[str, Any],
        conn: ConnectionAuth,
    ) -> None:
        """Record who opened the cursor a reply hands out; forget one a reply closes."""
        if not self.enabled:
            return
        cursor = reply.get("cursor")
        if not isinstance(cursor, Mapping):
            return
        cursor_id = int(cursor.get("id") or 0)
        if name.lower() == "getmore":
            if not cursor_id:
                self._cursor_owner.pop(int(cmd.get("getMore") or 0), None)
            return
        if not cursor_id:
            return
        needs = tuple(needs_of(command, db, cmd))
        ns = str(cursor.get("ns") or f"{db}.{cmd.get(name)}")
        self._cursor_owner[cursor_id] = CursorOwner(ns, tuple(conn.users), needs)
        while len(self._cursor_owner) > MAX_TRACKED_CURSORS:
            self._cursor_owner.popitem(last=False)

    @staticmethod
    def _coauthorized(conn: ConnectionAuth, users: tuple[UserRef, ...]) -> bool:
        # AuthorizationSession::isCoauthorizedWith: a user in common, or no users on
        # either side.
        return bool(set(conn.users) & set(users)) or (not conn.users and not users)

    def _check_get_more(self, cmd: Mapping[str, Any], conn: ConnectionAuth) -> None:
        cursor_id = int(cmd.get("getMore") or 0)
        owner = self._cursor_owner.get(cursor_id)
        if owner is None:  # unknown: the command answers CursorNotFound (43) itself
            return
        if not self._coauthorized(conn, owner.users):
            raise MongoError(13, f"cursor id {cursor_id} was not created by the authenticated user")
        granted = self.privileges_of(conn)
        if not all(privileges.allowed(granted, r, a) for r, a in owner.needs):
            raise MongoError(13, f"not authorized for getMore with cursor id {cursor_id}")

    def _check_kill_cursors(self, cmd: Mapping[str, Any], conn: ConnectionAuth) -> None:
        granted: list[Any] | None = None
        for raw in cmd.get("cursors") or []:
            owner = self._cursor_owner.get(int(raw))
            if owner is None or self._coauthorized(conn, owner.users):
                continue
            o_db, _, o_coll = owner.ns.partition(".")
            granted = self.privileges_of(conn) if granted is None else granted
            if not privileges.allowed(
                granted, privileges.ns_resource(o_db, o_coll), "killAnyCursor"
            ):
                raise MongoError(13, f"not authorized to kill cursor on {owner.ns}")
        for raw in cmd.get("cursors") or []:
            self._cursor_owner.pop(int(raw), None)

    # -- sessions -------------------------------------------------------------------------
    def _own_session(self, cmd: Mapping[str, Any], conn: ConnectionAuth) -> None:
        """Record the user a session belongs to (mongod keys sessions by user digest)."""
        lsid = cmd.get("lsid")
        if isinstance(lsid, Mapping):
            self._session_owner.setdefault(lsid_key(lsid), conn.users[0])

    def _check_kill_sessions(self, cmd: Mapping[str, Any], conn: ConnectionAuth) -> None:
        if privileges.allowed(self.privileges_of(conn), privileges.CLUSTER, "killAnySession"):
            return
        for lsid in cmd.get("killSessions") or []:
            owner = self._session_owner.get(lsid_key(lsid))
            if owner is not None and owner not in conn.users:
                raise MongoError(
                    13, f"not authorized on admin to execute command {privileges.shell_repr(cmd)}"
                )


def needs_of(command: Command, db: str, cmd: Mapping[str, Any]) -> list[Need]:
    """What ``cmd`` (run on ``db``) needs, as ``command`` declares it; every (resource,
    action) pair must be granted. A command that declares nothing needs root."""
    if command.needs is None:
        return privileges.root(db, cmd)
    return command.needs(db, cmd)


def make_connection_auth(peer: Any) -> ConnectionAuth:
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    return ConnectionAuth(loopback=host in ("127.0.0.1", "::1") or str(host).startswith("127."))


def role_args(cmd: Mapping[str, Any], db: str) -> list[dict[str, Any]]:
    return role_refs(cmd.get("roles", []), db)


# The commands answered here, before anyone authenticates (Runs.AUTH:
# handler(auth, db, cmd, connection's auth)).
@command("saslStart", runs=Runs.AUTH, access=Access.PUBLIC)
def _sasl_start(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    return auth._sasl_start(db, cmd, conn)


@command("saslContinue", runs=Runs.AUTH, access=Access.PUBLIC)
def _sasl_continue(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    return auth._sasl_continue(cmd, conn)


@command("logout", runs=Runs.AUTH, access=Access.PUBLIC)
def _logout(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    conn.users = [u for u in conn.users if u[0] != db]
    return {}


@command("connectionStatus", runs=Runs.AUTH, access=Access.PUBLIC)
def _connection_status(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    return auth.connection_status(conn)

"""Authentication and authorization, as mongod with ``--auth`` does them.

:class:`Auth` answers ``saslStart``/``saslContinue`` (SCRAM, :mod:`.scram`), the
speculative authentication drivers put in ``hello``, the user and role management
commands (:mod:`.users`) and checks every other command's privileges
(:mod:`.privileges`) before it runs. Without ``--auth`` users can still be created and
used, but nothing is enforced, as with mongod.

Sources: the driver "Authentication" specification (speculative authentication,
``saslSupportedMechs``), the manual's "Localhost Exception", "killSessions" (a user may
kill its own sessions; others' need ``killAnySession``) and mongod's
``src/mongo/db/commands/authentication_commands.cpp``/``sasl_commands.cpp``.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.binary import Binary

from . import privileges, scram
from .errors import MongoError
from .sessions import lsid_key
from .users import Catalog, credential_of, role_refs

_conversation_ids = itertools.count(1)
UserRef = tuple[str, str]  # (db, name)


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

    # -- command entry point ---------------------------------------------------------------
    def intercept(
        self, name: str, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth
    ) -> dict[str, Any] | None:
        """Answer auth commands; check privileges for the rest (None: run it as usual)."""
        from .user_commands import USER_COMMANDS

        lname = name.lower()
        if lname == "saslstart":
            return self._sasl_start(db, cmd, conn)
        if lname == "saslcontinue":
            return self._sasl_continue(cmd, conn)
        if lname == "logout":
            conn.users = [u for u in conn.users if u[0] != db]
            return {}
        if lname == "connectionstatus":
            return self.connection_status(conn)
        if self.enabled:
            self.authorize(name, db, cmd, conn)
        handler = USER_COMMANDS.get(lname)
        if handler is not None:
            return handler(self, db, cmd, conn)
        return None

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

    def authorize(self, name: str, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> None:
        lname = name.lower()
        if lname in privileges.NO_AUTH or self._localhost_exception(lname, conn):
            return
        if not conn.users:
            raise MongoError(13, f"Command {name} requires authentication")
        self._own_session(cmd, conn)
        if lname in privileges.ANY_USER:
            if lname == "killsessions":
                self._check_kill_sessions(cmd, conn)
            return
        granted = self.privileges_of(conn)
        for resource, action in privileges.required(name, db, cmd):
            if not privileges.allowed(granted, resource, action):
                raise MongoError(
                    13, f"not authorized on {db} to execute command {privileges.shell_repr(cmd)}"
                )

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


def make_connection_auth(peer: Any) -> ConnectionAuth:
    host = peer[0] if isinstance(peer, tuple) and peer else ""
    return ConnectionAuth(loopback=host in ("127.0.0.1", "::1") or str(host).startswith("127."))


def role_args(cmd: Mapping[str, Any], db: str) -> list[dict[str, Any]]:
    return role_refs(cmd.get("roles", []), db)

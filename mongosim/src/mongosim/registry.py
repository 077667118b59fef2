"""The command registry: every command declared once, with what the server must know.

A command module declares each handler with ``@command(...)``: its names, what it runs
against (:class:`Runs`), who may run it (:class:`Access`) and, for
``Access.PRIVILEGES``, the privileges it needs (``needs``: the (resource, action) pairs a
command body needs, built with :mod:`.privileges`' ``on_collection``/``on_database``/
``on_cluster`` or one of its functions for the commands whose needs depend on the body),
whether it is allowed inside a multi-document transaction, whether it writes (refused
on a secondary), whether it reads data (refused on a secondary without ``secondaryOk``)
and whether it is a retryable write. mongod keeps one such global registry of ``Command`` objects
(``src/mongo/db/commands.h``, ``CommandRegistry``); fakeredis marks its handlers with a
``@command`` decorator in the same way.

The server imports the command modules (which registers them) and hands
:data:`COMMANDS` to the engine and to its own dispatcher: there is one dispatch path,
and the engine imports no command module. This module imports nothing of mongosim's,
so every command module may import it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
Need = tuple[dict[str, Any], str]  # (resource, action): one privilege a command must hold
# (db, command body) -> every privilege the command needs there (mongod's
# checkAuthForOperation); a command's needs may depend on its body ($out, upsert, bypass).
Needs = Callable[[str, Mapping[str, Any]], list[Need]]


class Runs(enum.Enum):
    """What a handler is called with, and so which layer runs it."""

    ENGINE = "engine"  # (engine, db, cmd, op): in the engine, with its session and transaction
    TOPOLOGY = "topology"  # (topology, cmd, connection id) -> reply: the replica-set identity
    AUTH = "auth"  # (auth, db, cmd, connection's auth) -> reply: users, roles, SASL
    SERVER = "server"  # (server, request, connection) -> awaitable reply: the connection layer


class Access(enum.Enum):
    """Who may run a command when authorization is enabled."""

    PUBLIC = "public"  # anyone, before authenticating (mongod: requiresAuth() is false)
    USER = "user"  # any authenticated user; own sessions and cursors are checked in auth.py
    PRIVILEGES = "privileges"  # every privilege the command's ``needs`` names must be granted


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its handler and the facts the dispatcher acts on before running it."""

    names: tuple[str, ...]  # the canonical name first, then aliases
    handler: Handler
    runs: Runs = Runs.ENGINE
    access: Access = Access.PRIVILEGES
    in_txn: bool = False  # allowed in a transaction (manual: "Transactions and Operations")
    writes: bool = False  # a write: refused with NotWritablePrimary on a secondary
    reads_data: bool = False  # refused on a secondary unless the read preference allows it
    retryable: bool = False  # a retryable write (the retryable writes spec)
    # What an Access.PRIVILEGES command needs; None: root's anyAction on anyResource.
    needs: Needs | None = None

    @property
    def name(self) -> str:
        return self.names[0]


class Registry:
    """Commands by name; a name not found as sent is looked up case-insensitively."""

    def __init__(self) -> None:
        self._by_name: dict[str, Command] = {}
        self._by_lower: dict[str, Command] = {}

    def add(self, cmd: Command) -> None:
        for name in cmd.names:
            if name.lower() in self._by_lower:
                raise ValueError(f"command {name!r} is declared twice")
        for name in cmd.names:
            self._by_name[name] = cmd
            self._by_lower[name.lower()] = cmd

    def get(self, name: str) -> Command | None:
        return self._by_name.get(name) or self._by_lower.get(name.lower())

    def __iter__(self) -> Iterator[Command]:
        return iter(dict.fromkeys(self._by_name.values()))

    def command(
        self,
        *names: str,
        runs: Runs = Runs.ENGINE,
        access: Access = Access.PRIVILEGES,
        in_txn: bool = False,
        writes: bool = False,
        reads_data: bool = False,
        retryable: bool = False,
        needs: Needs | None = None,
    ) -> Callable[[H], H]:
        """Declare the decorated function as the handler of ``names``."""

        def register(handler: H) -> H:
            self.add(
                Command(names, handler, runs, access, in_txn, writes, reads_data, retryable, needs)
            )
            return handler

        return register


COMMANDS = Registry()  # what the command modules register into, as mongod's global registry
command = COMMANDS.command

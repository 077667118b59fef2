"""The command registry: each command declared once, with the facts the dispatcher acts on."""

from __future__ import annotations

import pytest
from mongosim.registry import Access, Registry, Runs
from mongosim.server import COMMANDS  # importing the server registers every command


def _names(**flags: bool) -> set[str]:
    return {c.name for c in COMMANDS if all(getattr(c, k) == v for k, v in flags.items())}


def test_a_name_cannot_be_declared_twice_in_any_case() -> None:
    registry = Registry()
    registry.command("find")(lambda: None)
    with pytest.raises(ValueError, match="declared twice"):
        registry.command("FIND")(lambda: None)


def test_a_name_not_found_as_sent_is_found_case_insensitively() -> None:
    find = COMMANDS.get("find")
    assert find is not None and COMMANDS.get("FIND") is find
    assert COMMANDS.get("findandmodify") is COMMANDS.get("findAndModify")
    assert COMMANDS.get("deleteIndexes") is COMMANDS.get("dropIndexes")
    assert COMMANDS.get("noSuchCommand") is None


def test_the_commands_allowed_in_a_transaction_are_mongods() -> None:
    """The manual's "Transactions and Operations", plus commit and abort themselves."""
    assert _names(in_txn=True) == {
        "find", "getMore", "killCursors", "insert", "update", "delete", "findAndModify",
        "aggregate", "distinct", "count", "create", "createIndexes",
        "commitTransaction", "abortTransaction",
    }  # fmt: skip


def test_retryable_writes_are_the_four_of_the_retryable_writes_spec() -> None:
    assert _names(retryable=True) == {"insert", "update", "delete", "findAndModify"}


def test_writes_and_reads_refused_on_a_secondary() -> None:
    assert _names(writes=True) == {
        "insert", "update", "delete", "findAndModify", "create", "createIndexes", "drop",
        "dropIndexes", "collMod", "dropDatabase", "renameCollection",
        "commitTransaction", "abortTransaction",
        # user management writes admin.system.users/system.roles (NotWritablePrimary)
        "createUser", "updateUser", "dropUser", "grantRolesToUser", "revokeRolesFromUser",
        "createRole", "updateRole", "dropRole",
    }  # fmt: skip
    assert _names(reads_data=True) == {
        "find",
        "aggregate",
        "count",
        "distinct",
        "listCollections",
        "listIndexes",
    }


def test_commands_anyone_may_run_before_authenticating() -> None:
    public = {c.name for c in COMMANDS if c.access is Access.PUBLIC}
    assert public == {
        "hello", "saslStart", "saslContinue", "logout", "connectionStatus", "ping",
        "buildInfo", "whatsmyuri", "getLog", "endSessions",
    }  # fmt: skip


def test_each_layer_answers_its_own_commands() -> None:
    runs = {name: c.runs for name in ("hello", "ping", "connectionStatus", "createUser", "find")
            if (c := COMMANDS.get(name)) is not None}  # fmt: skip
    assert runs == {
        "hello": Runs.SERVER,
        "ping": Runs.TOPOLOGY,
        "connectionStatus": Runs.AUTH,  # one answer: topology no longer has a dead copy
        "createUser": Runs.AUTH,
        "find": Runs.ENGINE,
    }

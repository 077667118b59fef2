"""What each command needs, by resource and action, as mongod's auth checks say."""

from __future__ import annotations

from typing import Any

import pytest
from mongosim.auth import needs_of
from mongosim.registry import Access
from mongosim.server import COMMANDS  # importing the server registers every command

FIND_ON_SOURCE = ("app", "src", "find")


def _needs(cmd: dict[str, Any]) -> set[tuple[str, str, str]]:
    command = COMMANDS.get(next(iter(cmd)))
    assert command is not None
    return {(r["db"], r["collection"], a) for r, a in needs_of(command, "app", cmd)}


@pytest.mark.parametrize(
    ("cmd", "needs"),
    [
        pytest.param({"find": "c"}, {("app", "c", "find")}, id="find"),
        pytest.param({"insert": "c"}, {("app", "c", "insert")}, id="insert"),
        pytest.param(
            {"insert": "c", "bypassDocumentValidation": True},
            {("app", "c", "insert"), ("app", "c", "bypassDocumentValidation")},
            id="insert-bypassing-the-validator",
        ),
        pytest.param({"update": "c", "updates": [{}]}, {("app", "c", "update")}, id="update"),
        pytest.param(
            {"update": "c", "updates": [{}, {"upsert": True}]},
            {("app", "c", "update"), ("app", "c", "insert")},
            id="update-with-upsert",
        ),
        pytest.param({"delete": "c"}, {("app", "c", "remove")}, id="delete"),
        pytest.param(
            {"findAndModify": "c", "update": {}},
            {("app", "c", "find"), ("app", "c", "update")},
            id="findAndModify",
        ),
        pytest.param(
            {"findAndModify": "c", "update": [], "upsert": True},
            {("app", "c", "find"), ("app", "c", "update"), ("app", "c", "insert")},
            id="findAndModify-upsert",
        ),
        pytest.param(
            {"findAndModify": "c", "remove": True},
            {("app", "c", "find"), ("app", "c", "remove")},
            id="findAndModify-remove",
        ),
        pytest.param(
            {"aggregate": "c", "pipeline": [{"$changeStream": {}}]},
            {("app", "c", "changeStream"), ("app", "c", "find")},
            id="changeStream",
        ),
        pytest.param(
            {"aggregate": "src", "pipeline": [{"$out": "t"}]},
            {FIND_ON_SOURCE, ("app", "t", "insert"), ("app", "t", "remove")},
            id="out",
        ),
        pytest.param(
            {"aggregate": "src", "pipeline": [{"$out": {"db": "other", "coll": "t"}}]},
            {FIND_ON_SOURCE, ("other", "t", "insert"), ("other", "t", "remove")},
            id="out-to-another-database",
        ),
        pytest.param(
            {"aggregate": "src", "pipeline": [{"$merge": "t"}]},
            {FIND_ON_SOURCE, ("app", "t", "insert"), ("app", "t", "update")},
            id="merge",
        ),
        pytest.param(
            {"aggregate": "src", "pipeline": [{"$merge": {"into": "t", "whenMatched": "fail"}}]},
            {FIND_ON_SOURCE, ("app", "t", "insert")},
            id="merge-insert-only",
        ),
        pytest.param(
            {
                "aggregate": "src",
                "pipeline": [
                    {"$merge": {"into": {"db": "o", "coll": "t"}, "whenNotMatched": "discard"}}
                ],
            },
            {FIND_ON_SOURCE, ("o", "t", "update")},
            id="merge-update-only",
        ),
        pytest.param(
            {"aggregate": "src", "pipeline": [{"$out": "t"}], "bypassDocumentValidation": True},
            {
                FIND_ON_SOURCE,
                ("app", "t", "insert"),
                ("app", "t", "remove"),
                ("app", "t", "bypassDocumentValidation"),
            },
            id="out-bypassing-the-validator",
        ),
    ],
)
def test_each_command_needs_the_actions_mongod_checks(
    cmd: dict[str, Any], needs: set[tuple[str, str, str]]
) -> None:
    """Neither more nor less than mongod asks: a role the tests prove minimal here is
    minimal on a real server."""
    assert _needs(cmd) == needs


def test_every_command_checked_by_privileges_declares_what_it_needs() -> None:
    """A new command cannot fall back to root silently: it names its needs, or names
    ``privileges.root`` where mongosim does not model mongod's finer check."""
    undeclared = [c.name for c in COMMANDS if c.access is Access.PRIVILEGES and c.needs is None]
    assert undeclared == []


def _as_set(name: str) -> set[tuple[str, str, str]]:
    command = COMMANDS.get(name)
    assert command is not None
    return {
        (r.get("db", ""), r.get("collection", ""), a)
        for r, a in needs_of(command, "app", {name: "c"})
    }


def test_the_commands_that_need_root_are_the_ones_declared_so() -> None:
    """mongod asks less of these (mongosim/README.md lists them as simplifications)."""
    root = {
        c.name
        for c in COMMANDS
        if c.access is Access.PRIVILEGES and ("", "", "anyAction") in _as_set(c.name)
    }
    assert root == {"explain", "killAllSessionsByPattern", "setParameter", "validate"}


@pytest.mark.parametrize(
    ("sent", "canonical"),
    [
        ({"AGGREGATE": "c", "pipeline": []}, {"aggregate": "c", "pipeline": []}),
        ({"FindAndModify": "c", "remove": True}, {"findAndModify": "c", "remove": True}),
        ({"findandmodify": "c", "upsert": True}, {"findAndModify": "c", "upsert": True}),
        (
            {"UPDATE": "c", "updates": [{"upsert": True}]},
            {"update": "c", "updates": [{"upsert": True}]},
        ),
        ({"deleteIndexes": "c"}, {"dropIndexes": "c"}),
        ({"Find": "c"}, {"find": "c"}),
    ],
)
def test_a_name_in_another_case_or_an_alias_needs_what_the_canonical_name_needs(
    sent: dict[str, Any], canonical: dict[str, Any]
) -> None:
    """The registry finds a command whatever the case of its name; its needs are read
    from the same key, so no spelling needs less."""
    assert _needs(sent) == _needs(canonical)

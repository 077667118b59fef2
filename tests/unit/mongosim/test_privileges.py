"""What each command needs, by resource and action, as mongod's auth checks say."""

from __future__ import annotations

from typing import Any

import pytest
from mongosim.privileges import required

FIND_ON_SOURCE = ("app", "src", "find")


def _needs(cmd: dict[str, Any]) -> set[tuple[str, str, str]]:
    name = next(iter(cmd))
    return {(r["db"], r["collection"], a) for r, a in required(name, "app", cmd)}


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

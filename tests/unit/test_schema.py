"""The schema loader and the pure bootstrap planner, table-driven, without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from bson.int64 import Int64
from mongosim.jsonschema_keywords import KNOWN_KEYWORDS

from streamer.core.errors import BootstrapError, SchemaError, SettingsError
from streamer.core.index_shapes import normalize_index, normalize_value
from streamer.core.schema import Schema, load_schema, parse_schema
from streamer.core.schema_plan import ActionKind, plan

CONFIG = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"

VALIDATOR = {"$jsonSchema": {"bsonType": "object", "required": ["a"]}}


def one(coll: dict[str, Any], name: str = "c") -> Schema:
    return parse_schema({"collections": {name: coll}})


def listed(name: str = "c", **options: Any) -> dict[str, Any]:
    """A listCollections entry as mongod returns it."""
    return {"name": name, "type": "collection", "options": options}


ID_INDEX = {"v": 2, "key": {"_id": 1}, "name": "_id_"}


# -- loading ---------------------------------------------------------------------------------


def test_the_shipped_schema_declares_the_services_collections_and_index_names() -> None:
    """config/schema.yaml loads and holds the names other code depends on."""
    schema = load_schema(CONFIG)
    names = {c.name: {ix.name for ix in c.indexes} for c in schema.collections}
    assert names["stock_alerts"] == {"one_open_alert_per_product", "state_opened_at"}
    assert names["streamer_mirror_orders"] == {"user_status_created", "resync_generation"}
    assert names["streamer_mirror_inventory"] == {"resync_generation"}
    assert names["streamer_quarantine"] == {"stream_at"}
    assert names["user_totals"] == names["streamer_checkpoints"] == set()
    users = schema.collection("users")
    assert users.validation_level == "moderate" and users.validation_action == "error"
    alert = schema.collection("stock_alerts").indexes[0]
    assert alert.options == {"unique": True, "partialFilterExpression": {"state": "open"}}
    ttl = schema.collection("sessions").indexes[0]
    assert ttl.keys == (("expires_at", 1),) and ttl.options == {"expireAfterSeconds": 0}


def _keywords(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            found.add(key)
            if key == "properties":
                for sub in value.values():
                    found |= _keywords(sub)
            else:
                found |= _keywords(value)
    return found


def test_the_shipped_validators_only_use_jsonschema_keywords_mongosim_knows() -> None:
    """Every $jsonSchema keyword in config/schema.yaml is one mongosim (and mongod) accepts."""
    for coll in load_schema(CONFIG).collections:
        if coll.validator is not None:
            assert _keywords(coll.validator["$jsonSchema"]) <= KNOWN_KEYWORDS, coll.name


def test_a_missing_schema_file_is_a_schema_error_naming_path_and_setting(tmp_path: Path) -> None:
    """An unreadable file names the path and STREAMER_SCHEMA_PATH instead of raising OSError."""
    with pytest.raises(SchemaError) as info:
        load_schema(tmp_path / "absent.yaml")
    assert str(info.value) == (
        f"cannot read schema file {tmp_path / 'absent.yaml'}: No such file or directory "
        "(STREAMER_SCHEMA_PATH)"
    )


def test_a_schema_error_is_a_configuration_error() -> None:
    """Exit 2 like every settings error (streamer.commands.cli), not 1 like a refused bootstrap."""
    assert issubclass(SchemaError, SettingsError)
    assert not issubclass(SchemaError, BootstrapError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("collections: {users: [\n", ":2:1: invalid YAML: expected the node content"),
        (
            "collections:\n  orders:\n    indexes: [{name: a, keys: [[x, 1]]]\n",
            ":3:39: invalid YAML: expected ',' or '}', but got ']'",
        ),
        ("collections:\n  users: {\n  bad\n", ":4:1: invalid YAML: expected ',' or '}'"),
    ],
)
def test_invalid_yaml_is_one_line_with_file_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Like the config file: ``file:line:column: invalid YAML: problem``, never PyYAML's
    seven lines ending ``in "<unicode string>"``."""
    path = tmp_path / "schema.yaml"
    path.write_text(text)
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    message = str(info.value)
    assert message.startswith(f"{path}{expected}"), message
    assert "\n" not in message and "<unicode string>" not in message


def test_a_content_error_in_a_file_is_file_key_path_problem(tmp_path: Path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text(
        "collections:\n  orders:\n    indexes:\n"
        "      - {name: by_user, keys: [[user_id, 1]]}\n"
        "      - {name: ttl, keys: [[at, 1]], expireAfterSeconds: -5}\n"
    )
    with pytest.raises(SchemaError) as info:
        load_schema(path)
    assert str(info.value) == (
        f"{path}: collections.orders.indexes[1].expireAfterSeconds: must be a non-negative integer"
    )


U = "schema: collections.users"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "schema: the top level must be a mapping with a 'collections' mapping, not a list"),
        (
            {"collections": []},
            "schema: collections: must be a mapping of collection names to their declarations, "
            "not a list",
        ),
        ({"collections": {}, "extra": 1}, "schema: extra: unknown key (expected: collections)"),
        ({"collections": {"a$b": {}}}, "schema: collections.a$b: invalid collection name 'a$b'"),
        ({"collections": {"users": []}}, f"{U}: must be a mapping, not a list"),
        (
            {"collections": {"users": {"indexs": []}}},
            f"{U}.indexs: unknown key (expected one of indexes, validationAction, "
            "validationLevel, validator)",
        ),
        ({"collections": {"users": {"validator": []}}}, f"{U}.validator: must be a non-empty"),
        (
            {"collections": {"users": {"validator": VALIDATOR, "validationLevel": "lax"}}},
            f"{U}.validationLevel: 'lax' is not one of moderate, off, strict",
        ),
        (
            {"collections": {"users": {"validator": VALIDATOR, "validationAction": "log"}}},
            f"{U}.validationAction: 'log' is not one of error, warn",
        ),
        (
            {"collections": {"users": {"validationLevel": "moderate"}}},
            f"{U}.validationLevel: needs a validator",
        ),
        ({"collections": {"users": {"indexes": {}}}}, f"{U}.indexes: must be a list, not a dict"),
        (
            {"collections": {"users": {"indexes": [{"keys": [["a", 1]]}]}}},
            f"{U}.indexes[0].name: every index needs a non-empty string name",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": {"email": 1}}]}}},
            f"{U}.indexes[0].keys: must be a non-empty list of [field, direction] pairs",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": [["email"]]}]}}},
            f"{U}.indexes[0].keys[0]: ['email'] is not a [field, direction] pair",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": [["email", 2]]}]}}},
            f"{U}.indexes[0].keys[0]: key 'email' has direction 2; expected 1, -1 or one of",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": [["a", 1], ["a", -1]]}]}}},
            f"{U}.indexes[0].keys[1]: key 'a' appears twice",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": [["a", True]]}]}}},
            f"{U}.indexes[0].keys[0]: key 'a': the direction must be 1 or -1, not a boolean",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "e", "keys": [["a", 1]], "uniq": 1}]}}},
            f"{U}.indexes[0].uniq: unknown index option",
        ),
        (
            {
                "collections": {
                    "users": {"indexes": [{"name": "e", "keys": [["a", 1]], "unique": 1}]}
                }
            },
            f"{U}.indexes[0].unique: must be true or false",
        ),
        (
            {
                "collections": {
                    "users": {
                        "indexes": [{"name": "t", "keys": [["x", 1]], "expireAfterSeconds": -1}]
                    }
                }
            },
            f"{U}.indexes[0].expireAfterSeconds: must be a non-negative integer",
        ),
        (
            {
                "collections": {
                    "users": {
                        "indexes": [
                            {"name": "t", "keys": [["x", 1], ["y", 1]], "expireAfterSeconds": 5}
                        ]
                    }
                }
            },
            f"{U}.indexes[0].keys: a TTL index must have exactly one key",
        ),
        (
            {"collections": {"users": {"indexes": [{"name": "_id_", "keys": [["_id", 1]]}]}}},
            f"{U}.indexes[0].name: the _id index is implicit",
        ),
        (
            {
                "collections": {
                    "users": {
                        "indexes": [
                            {"name": "a", "keys": [["x", 1]]},
                            {"name": "a", "keys": [["y", 1]]},
                        ]
                    }
                }
            },
            f"{U}.indexes[1].name: index 'a' is declared twice (also collections.users.indexes[0])",
        ),
        (
            {
                "collections": {
                    "users": {
                        "indexes": [
                            {"name": "a", "keys": [["x", 1]]},
                            {"name": "b", "keys": [["x", 1]], "unique": True},
                        ]
                    }
                }
            },
            f"{U}.indexes[1].keys: index 'b' has the same keys as index 'a'",
        ),
    ],
)
def test_malformed_schemas_are_rejected_naming_the_key_path(data: Any, message: str) -> None:
    """Each malformed input raises SchemaError ``source: key.path: problem``."""
    with pytest.raises(SchemaError) as info:
        parse_schema(data)
    assert str(info.value).startswith(message), str(info.value)


def test_a_collection_without_a_body_is_declared_with_nothing_to_manage() -> None:
    """``name: {}`` or ``name:`` (null) declares a bare collection."""
    schema = parse_schema({"collections": {"a": {}, "b": None}})
    assert [(c.name, c.validator, c.indexes) for c in schema.collections] == [
        ("a", None, ()),
        ("b", None, ()),
    ]


# -- normalisation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "listed_doc"),
    [
        (
            {"key": {"email": 1}, "name": "e", "unique": True},
            {"v": 2, "key": {"email": 1}, "name": "e", "unique": True, "ns": "db.c"},
        ),
        (
            {"key": {"a": 1}, "name": "a"},
            {"v": 1, "key": {"a": 1.0}, "name": "a", "background": True},
        ),
        ({"key": {"a": -1}, "name": "a"}, {"v": 2, "key": {"a": Int64(-1)}, "name": "a"}),
        ({"key": {"a": 1}, "name": "a"}, {"v": 2, "key": {"a": 1}, "name": "a", "unique": False}),
        (
            {"key": {"t": 1}, "name": "t", "expireAfterSeconds": 0},
            {"v": 2, "key": {"t": 1}, "name": "t", "expireAfterSeconds": 0.0},
        ),
        (
            {"key": {"name": "text", "bio": "text"}, "name": "n"},
            {
                "v": 2,
                "key": {"_fts": "text", "_ftsx": 1},
                "name": "n",
                "weights": {"bio": 1, "name": 1},
                "default_language": "english",
                "language_override": "language",
                "textIndexVersion": 3,
            },
        ),
        (
            {"key": {"shop": 1, "title": "text"}, "name": "s"},
            {
                "v": 2,
                "key": {"shop": 1, "_fts": "text", "_ftsx": 1},
                "name": "s",
                "weights": {"title": Int64(1)},
                "default_language": "english",
                "language_override": "language",
                "textIndexVersion": 3,
            },
        ),
        (
            {"key": {"p": 1}, "name": "p", "partialFilterExpression": {"n": {"$gt": 5}}},
            {"v": 2, "key": {"p": 1}, "name": "p", "partialFilterExpression": {"n": {"$gt": 5.0}}},
        ),
    ],
)
def test_declared_and_listed_indexes_normalise_equal(
    declared: dict[str, Any], listed_doc: dict[str, Any]
) -> None:
    """v/ns/background are ignored, numbers compare by value, text indexes in mongod's shape."""
    assert normalize_index(declared) == normalize_index(listed_doc)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({"key": {"a": 1, "b": 1}, "name": "x"}, {"key": {"b": 1, "a": 1}, "name": "x"}),
        ({"key": {"a": 1}, "name": "x"}, {"key": {"a": -1}, "name": "x"}),
        ({"key": {"a": 1}, "name": "x"}, {"key": {"a": 1}, "name": "x", "unique": True}),
        ({"key": {"a": 1}, "name": "x"}, {"key": {"a": 1}, "name": "x", "sparse": True}),
    ],
)
def test_indexes_that_differ_in_key_order_direction_or_options_do_not_normalise_equal(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    """Key order and direction matter; so do options such as unique and sparse."""
    assert normalize_index(a) != normalize_index(b)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, 1),
        (1.0, 1),
        (Int64(7), 7),
        (0.5, 0.5),
        (True, True),
        ({"x": [1.0, {"y": Int64(2)}]}, {"x": [1, {"y": 2}]}),
        ("1", "1"),
    ],
)
def test_numbers_normalise_by_value_and_booleans_stay_booleans(value: Any, expected: Any) -> None:
    """1, 1.0 and Int64(1) are one value; True is not turned into 1."""
    result = normalize_value(value)
    assert result == expected and type(result) is type(expected)


# -- planning ------------------------------------------------------------------------------

USERS = {
    "validator": VALIDATOR,
    "validationLevel": "moderate",
    "indexes": [
        {"name": "email_1", "keys": [["email", 1]], "unique": True},
        {"name": "bio_text", "keys": [["bio", "text"]]},
    ],
}
EMAIL_OK = {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True}
BIO_OK = {
    "v": 2,
    "key": {"_fts": "text", "_ftsx": 1},
    "name": "bio_text",
    "weights": {"bio": 1},
    "default_language": "english",
    "language_override": "language",
    "textIndexVersion": 3,
}
USERS_OPTIONS = {"validator": VALIDATOR, "validationLevel": "moderate", "validationAction": "error"}


def test_a_missing_collection_is_created_with_its_validator_then_its_indexes() -> None:
    """Planning against an empty database: create (with validator), then createIndexes."""
    result = plan(one(USERS, "users"), [], {})
    assert [a.kind for a in result.actions] == [
        ActionKind.CREATE_COLLECTION,
        ActionKind.CREATE_INDEX,
        ActionKind.CREATE_INDEX,
    ]
    assert result.actions[0].command == {"create": "users", **USERS_OPTIONS}
    assert result.actions[1].command == {
        "createIndexes": "users",
        "indexes": [{"key": {"email": 1}, "name": "email_1", "unique": True}],
    }
    assert result.actions[2].command["indexes"] == [{"key": {"bio": "text"}, "name": "bio_text"}]
    assert not result.conflicts and not result.notes and not result.up_to_date


def test_a_database_matching_the_schema_plans_nothing() -> None:
    """Same validator and indexes as mongod lists them: the plan is empty."""
    state = [listed("users", **USERS_OPTIONS)]
    result = plan(one(USERS, "users"), state, {"users": [ID_INDEX, EMAIL_OK, BIO_OK]})
    assert result.up_to_date and not result.actions and not result.notes


@pytest.mark.parametrize(
    ("observed_options", "changes"),
    [
        ({}, True),
        ({"validator": VALIDATOR}, True),  # validationLevel strict by default, moderate declared
        ({"validator": VALIDATOR, "validationLevel": "moderate"}, False),  # action defaults
        ({**USERS_OPTIONS, "validationAction": "warn"}, True),
        ({**USERS_OPTIONS, "validator": {"$jsonSchema": {"required": ["b"]}}}, True),
        (
            {
                **USERS_OPTIONS,
                "validator": {"$jsonSchema": {"required": ["a"], "bsonType": "object"}},
            },
            False,
        ),
    ],
)
def test_validation_options_are_compared_with_mongod_defaults(
    observed_options: dict[str, Any], changes: bool
) -> None:
    """A differing validator/level/action plans a collMod; field order and defaults don't."""
    schema = one({k: v for k, v in USERS.items() if k != "indexes"}, "users")
    result = plan(schema, [listed("users", **observed_options)], {"users": [ID_INDEX]})
    kinds = [a.kind for a in result.actions]
    assert kinds == ([ActionKind.MODIFY_VALIDATION] if changes else [])
    if changes:
        assert result.actions[0].command == {"collMod": "users", **USERS_OPTIONS}
        assert result.actions[0].before and result.actions[0].after


def test_validation_is_not_managed_when_no_validator_is_declared() -> None:
    """A declared collection without validator leaves an existing validator alone."""
    result = plan(one({}), [listed("c", validator=VALIDATOR)], {"c": [ID_INDEX]})
    assert result.up_to_date


TTL = {"indexes": [{"name": "exp_1", "keys": [["exp", 1]], "expireAfterSeconds": 0}]}


@pytest.mark.parametrize(
    ("existing", "kind", "reason"),
    [
        ({"key": {"exp": 1}, "expireAfterSeconds": 3600}, ActionKind.MODIFY_INDEX_TTL, None),
        ({"key": {"exp": 1}, "expireAfterSeconds": Int64(0)}, None, None),
        ({"key": {"exp": 1}}, None, "same name, different keys or options"),
        (
            {"key": {"exp": -1}, "expireAfterSeconds": 60},
            None,
            "same name, different keys or options",
        ),
        (
            {"key": {"exp": 1}, "expireAfterSeconds": 60, "sparse": True},
            None,
            "same name, different keys or options",
        ),
    ],
)
def test_only_a_pure_ttl_difference_is_changed_in_place(
    existing: dict[str, Any], kind: ActionKind | None, reason: str | None
) -> None:
    """expireAfterSeconds alone differs: collMod; anything else about the index: conflict."""
    doc = {"v": 2, "name": "exp_1", **existing}
    result = plan(one(TTL), [listed()], {"c": [ID_INDEX, doc]})
    assert [a.kind for a in result.actions] == ([kind] if kind else [])
    if kind is ActionKind.MODIFY_INDEX_TTL:
        assert result.actions[0].command == {
            "collMod": "c",
            "index": {"name": "exp_1", "expireAfterSeconds": 0},
        }
        assert (result.actions[0].before, result.actions[0].after) == ("3600", "0")
    assert [c.reason for c in result.conflicts] == ([reason] if reason else [])


@pytest.mark.parametrize(
    ("existing", "reason", "in_the_way"),
    [
        (
            [{"v": 2, "key": {"email": 1}, "name": "email_1"}],
            "same name, different keys or options",
            ("email_1",),
        ),
        (
            [{"v": 2, "key": {"email": 1}, "name": "by_email", "unique": True}],
            "same keys, other name",
            ("by_email",),
        ),
        (
            [
                {"v": 2, "key": {"mail": 1}, "name": "email_1"},
                {"v": 2, "key": {"email": 1}, "name": "by_email"},
            ],
            "same name and same keys held by different indexes",
            ("email_1", "by_email"),
        ),
    ],
)
def test_an_index_in_the_way_is_a_conflict_with_before_and_after(
    existing: list[dict[str, Any]], reason: str, in_the_way: tuple[str, ...]
) -> None:
    """Same name or same keys with other options: a conflict, never a silent drop."""
    schema = one({"indexes": [{"name": "email_1", "keys": [["email", 1]], "unique": True}]})
    result = plan(schema, [listed()], {"c": [ID_INDEX, *existing]})
    assert not result.actions
    [conflict] = result.conflicts
    assert (conflict.index, conflict.reason, conflict.existing) == ("email_1", reason, in_the_way)
    assert conflict.after == 'email_1 key={"email": 1} unique=true'
    assert all(name in conflict.before for name in in_the_way)
    assert conflict.declared == {"key": {"email": 1}, "name": "email_1", "unique": True}
    assert not result.notes


def test_undeclared_indexes_are_notes_not_drift() -> None:
    """An extra index is reported (kept), and the plan is still up to date."""
    extra = {"v": 2, "key": {"nick": 1}, "name": "nick_1"}
    result = plan(one({}), [listed()], {"c": [ID_INDEX, extra]})
    assert result.up_to_date
    assert [n.message for n in result.notes] == ['undeclared index c.nick_1 key={"nick": 1} (kept)']


def test_undeclared_collections_are_ignored() -> None:
    """Collections the schema does not name are none of bootstrap's business."""
    result = plan(one({}), [listed(), listed("other")], {"c": [ID_INDEX]})
    assert result.up_to_date and not result.notes


def test_the_shipped_schema_plans_one_action_per_collection_and_index_on_an_empty_db() -> None:
    """Planning config/schema.yaml against nothing creates everything exactly once."""
    schema = load_schema(CONFIG)
    result = plan(schema, [], {})
    creates = [a for a in result.actions if a.kind is ActionKind.CREATE_COLLECTION]
    indexes = [a for a in result.actions if a.kind is ActionKind.CREATE_INDEX]
    assert len(creates) == len(schema.collections)
    assert len(indexes) == sum(len(c.indexes) for c in schema.collections)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"validator": VALIDATOR, "validationLevel": ["strict"]},
            f"{U}.validationLevel: ['strict'] is not one of moderate, off, strict",
        ),
        (
            {"indexes": [{"name": "e", "keys": [["a", {"x": 1}]]}]},
            f"{U}.indexes[0].keys[0]: key 'a' has direction {{'x': 1}}; expected 1, -1 or",
        ),
    ],
)
def test_a_list_or_mapping_where_a_word_belongs_is_a_one_line_error(
    body: Any, message: str
) -> None:
    """Not a TypeError from hashing it: the same ``source: key.path: problem`` line."""
    with pytest.raises(SchemaError) as info:
        parse_schema({"collections": {"users": body}})
    assert str(info.value).startswith(message), str(info.value)

"""$jsonSchema matching and errInfo details, checked against the server's own expectations.

Most expected details are copied from mongodb/mongo
src/mongo/db/matcher/doc_validation/doc_validation_error_json_schema_test.cpp.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from mongosim.errors import MongoError
from mongosim.jsonschema import compile_json_schema
from mongosim.validator_errors import CollectionValidator

from mongosim import validator_errors


def _js(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"operatorName": "$jsonSchema", "schemaRulesNotSatisfied": list(rules)}


def _props(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"operatorName": "properties", "propertiesNotSatisfied": list(entries)}


def _prop(name: str, *details: dict[str, Any], **notes: Any) -> dict[str, Any]:
    return {"propertyName": name, **notes, "details": list(details)}


def _type(name: str, spec: Any, value: Any, considered: str) -> dict[str, Any]:
    return {
        "operatorName": name,
        "specifiedAs": {name: spec},
        "reason": "type did not match",
        "consideredValue": value,
        "consideredType": considered,
    }


def _cmp(name: str, spec: dict[str, Any], value: Any) -> dict[str, Any]:
    return {
        "operatorName": name,
        "specifiedAs": spec,
        "reason": "comparison failed",
        "consideredValue": value,
    }


def _required(spec: list[str], missing: list[str]) -> dict[str, Any]:
    return {
        "operatorName": "required",
        "specifiedAs": {"required": spec},
        "missingProperties": missing,
    }


FAILURES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "minimum",
        {"properties": {"a": {"minimum": 1}}},
        {"a": 0},
        _js(_props(_prop("a", _cmp("minimum", {"minimum": 1}, 0)))),
    ),
    (
        "exclusive-minimum",
        {"properties": {"a": {"minimum": 1, "exclusiveMinimum": True}}},
        {"a": 1},
        _js(_props(_prop("a", _cmp("minimum", {"minimum": 1, "exclusiveMinimum": True}, 1)))),
    ),
    (
        "exclusive-maximum",
        {"properties": {"a": {"maximum": 1, "exclusiveMaximum": True}}},
        {"a": 1},
        _js(_props(_prop("a", _cmp("maximum", {"maximum": 1, "exclusiveMaximum": True}, 1)))),
    ),
    (
        "maximum-before-minimum",
        {"properties": {"a": {"properties": {"b": {"minimum": 10, "maximum": -10}}}}},
        {"a": {"b": 5}},
        _js(
            _props(
                _prop(
                    "a",
                    _props(
                        _prop(
                            "b",
                            _cmp("maximum", {"maximum": -10}, 5),
                            _cmp("minimum", {"minimum": 10}, 5),
                        )
                    ),
                )
            )
        ),
    ),
    (
        "title-and-description",
        {"properties": {"a": {"minimum": 1}}, "title": "t", "description": "d"},
        {"a": 0},
        {
            "operatorName": "$jsonSchema",
            "title": "t",
            "description": "d",
            "schemaRulesNotSatisfied": [_props(_prop("a", _cmp("minimum", {"minimum": 1}, 0)))],
        },
    ),
    (
        "type-reports-mismatch-not-minimum",
        {
            "properties": {
                "a": {
                    "type": "number",
                    "minimum": 1,
                    "title": "property a",
                    "description": "a >= 1",
                }
            }
        },
        {"a": "foo"},
        _js(
            _props(
                _prop(
                    "a",
                    _type("type", "number", "foo", "string"),
                    title="property a",
                    description="a >= 1",
                )
            )
        ),
    ),
    (
        "contradicting-type",
        {"type": "object", "properties": {"a": {"type": "string", "minimum": 5}}},
        {"a": 6},
        _js(_props(_prop("a", _type("type", "string", 6, "int")))),
    ),
    (
        "bson-type",
        {"properties": {"a": {"bsonType": "double"}}},
        {"a": {"b": 1}},
        _js(_props(_prop("a", _type("bsonType", "double", {"b": 1}, "object")))),
    ),
    (
        "type-no-array-traversal",
        {"properties": {"a": {"type": "string"}}},
        {"a": ["x", "y"]},
        _js(_props(_prop("a", _type("type", "string", ["x", "y"], "array")))),
    ),
    (
        "long-is-not-int",
        {"properties": {"a": {"bsonType": "int"}}},
        {"a": Int64(3)},
        _js(_props(_prop("a", _type("bsonType", "int", Int64(3), "long")))),
    ),
    (
        "bson-type-array",
        {"properties": {"a": {"bsonType": ["string", "null"]}}},
        {"a": 1.5},
        _js(_props(_prop("a", _type("bsonType", ["string", "null"], 1.5, "double")))),
    ),
    (
        "min-length",
        {"properties": {"a": {"type": "string", "minLength": 4}}},
        {"a": "foo"},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "minLength",
                        "specifiedAs": {"minLength": 4},
                        "reason": "specified string length was not satisfied",
                        "consideredValue": "foo",
                    },
                )
            )
        ),
    ),
    (
        "max-length-counts-code-points",
        {"properties": {"a": {"maxLength": 2}}},
        {"a": "héé"},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "maxLength",
                        "specifiedAs": {"maxLength": 2},
                        "reason": "specified string length was not satisfied",
                        "consideredValue": "héé",
                    },
                )
            )
        ),
    ),
    (
        "pattern",
        {"properties": {"a": {"pattern": "^S"}}},
        {"a": "slow"},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "pattern",
                        "specifiedAs": {"pattern": "^S"},
                        "reason": "regular expression did not match",
                        "consideredValue": "slow",
                    },
                )
            )
        ),
    ),
    (
        "multiple-of",
        {"properties": {"a": {"multipleOf": 2.1}}},
        {"a": 1.1},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "multipleOf",
                        "specifiedAs": {"multipleOf": 2.1},
                        "reason": "considered value is not a multiple of the specified value",
                        "consideredValue": 1.1,
                    },
                )
            )
        ),
    ),
    (
        "enum",
        {"properties": {"a": {"enum": [1, 2, 3]}}},
        {"a": 0},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "enum",
                        "specifiedAs": {"enum": [1, 2, 3]},
                        "reason": "value was not found in enum",
                        "consideredValue": 0,
                    },
                )
            )
        ),
    ),
    (
        "top-level-enum",
        {"enum": [{"a": 1, "b": 1}]},
        {"a": 0, "b": 1, "_id": 1},
        _js(
            {
                "operatorName": "enum",
                "specifiedAs": {"enum": [{"a": 1, "b": 1}]},
                "reason": "value was not found in enum",
                "consideredValue": {"a": 0, "b": 1, "_id": 1},
            }
        ),
    ),
    (
        "required-sorted-missing",
        {"required": ["c", "a", "b"]},
        {"c": 1, "d": 2},
        _js(_required(["c", "a", "b"], ["a", "b"])),
    ),
    (
        "required-hides-property-rules",
        {"required": ["a"], "properties": {"a": {"type": "number", "minimum": 1}}},
        {},
        _js(_required(["a"], ["a"])),
    ),
    (
        "nested-required",
        {"properties": {"t": {"required": ["a", "b", "c"]}}},
        {"t": {"c": 1, "d": 2}},
        _js(_props(_prop("t", _required(["a", "b", "c"], ["a", "b"])))),
    ),
    (
        "min-properties",
        {"minProperties": 10},
        {"_id": 1, "a": 1, "b": 2, "c": 3},
        _js(
            {
                "operatorName": "minProperties",
                "specifiedAs": {"minProperties": 10},
                "reason": "specified number of properties was not satisfied",
                "numberOfProperties": 4,
            }
        ),
    ),
    (
        "max-properties-nested",
        {"properties": {"a": {"maxProperties": 1}}},
        {"a": {"b": 1, "c": 2}},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "maxProperties",
                        "specifiedAs": {"maxProperties": 1},
                        "reason": "specified number of properties was not satisfied",
                        "numberOfProperties": 2,
                    },
                )
            )
        ),
    ),
    (
        "additional-properties-false",
        {"properties": {"b": {"type": "number"}}, "additionalProperties": False},
        {"_id": 0, "a": 1, "b": 2},
        _js(
            {
                "operatorName": "additionalProperties",
                "specifiedAs": {"additionalProperties": False},
                "additionalProperties": ["_id", "a"],
            }
        ),
    ),
    (
        "additional-properties-before-required",
        {"required": ["a"], "properties": {"b": {"type": "number"}}, "additionalProperties": False},
        {"_id": 0, "b": 2},
        _js(
            {
                "operatorName": "additionalProperties",
                "specifiedAs": {"additionalProperties": False},
                "additionalProperties": ["_id"],
            },
            _required(["a"], ["a"]),
        ),
    ),
    (
        "additional-properties-schema",
        {"properties": {"a": {"type": "number"}}, "additionalProperties": {"type": "string"}},
        {"a": 1, "b": "ok", "d": 1},
        _js(
            {
                "operatorName": "additionalProperties",
                "reason": "at least one additional property did not match the subschema",
                "failingProperty": "d",
                "details": [_type("type", "string", 1, "int")],
            }
        ),
    ),
    (
        "pattern-properties",
        {"patternProperties": {"^S": {"type": "number"}}},
        {"Super": 1, "Slow": "67"},
        _js(
            {
                "operatorName": "patternProperties",
                "details": [
                    {
                        "propertyName": "Slow",
                        "regexMatched": "^S",
                        "details": [_type("type", "number", "67", "string")],
                    }
                ],
            }
        ),
    ),
    (
        "pattern-and-additional",
        {"patternProperties": {"^S": {"type": "number"}}, "additionalProperties": False},
        {"Super": 1, "Slow": "x", "b": 1},
        _js(
            {
                "operatorName": "additionalProperties",
                "specifiedAs": {"additionalProperties": False},
                "additionalProperties": ["b"],
            },
            {
                "operatorName": "patternProperties",
                "details": [
                    {
                        "propertyName": "Slow",
                        "regexMatched": "^S",
                        "details": [_type("type", "number", "x", "string")],
                    }
                ],
            },
        ),
    ),
    (
        "property-dependency",
        {"dependencies": {"a": ["b", "c"], "title": "a needs b and c"}},
        {"a": 1, "b": 2},
        _js(
            {
                "operatorName": "dependencies",
                "title": "a needs b and c",
                "failingDependencies": [{"conditionalProperty": "a", "missingProperties": ["c"]}],
            }
        ),
    ),
    (
        "schema-dependency",
        {"dependencies": {"a": {"properties": {"b": {"type": "number"}}}}},
        {"a": 1, "b": "foo"},
        _js(
            {
                "operatorName": "dependencies",
                "failingDependencies": [
                    {
                        "conditionalProperty": "a",
                        "details": [_props(_prop("b", _type("type", "number", "foo", "string")))],
                    }
                ],
            }
        ),
    ),
    (
        "min-items",
        {"properties": {"a": {"minItems": 2}}},
        {"a": [1]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "minItems",
                        "specifiedAs": {"minItems": 2},
                        "reason": "array did not match specified length",
                        "consideredValue": [1],
                        "numberOfItems": 1,
                    },
                )
            )
        ),
    ),
    (
        "unique-items",
        {"properties": {"a": {"uniqueItems": True}}},
        {"a": [1, 2, 3, 3, 4, 4]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "uniqueItems",
                        "specifiedAs": {"uniqueItems": True},
                        "reason": "found a duplicate item",
                        "consideredValue": [1, 2, 3, 3, 4, 4],
                        "duplicatedValue": 3,
                    },
                )
            )
        ),
    ),
    (
        "unique-items-ignores-field-order",
        {"properties": {"a": {"uniqueItems": True}}},
        {"a": [{"x": 1, "y": 2}, {"y": 2, "x": 1.0}]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "uniqueItems",
                        "specifiedAs": {"uniqueItems": True},
                        "reason": "found a duplicate item",
                        "consideredValue": [{"x": 1, "y": 2}, {"y": 2, "x": 1.0}],
                        "duplicatedValue": {"y": 2, "x": 1.0},
                    },
                )
            )
        ),
    ),
    (
        "items-single-schema",
        {"properties": {"a": {"items": {"type": "string", "description": "strings"}}}},
        {"a": [1, "A", {}]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "items",
                        "description": "strings",
                        "reason": "At least one item did not match the sub-schema",
                        "itemIndex": 0,
                        "details": [_type("type", "string", 1, "int")],
                    },
                )
            )
        ),
    ),
    (
        "items-schema-array",
        {"properties": {"a": {"items": [{"type": "number"}, {"type": "string"}]}}},
        {"a": [1, 2]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "items",
                        "details": [
                            {"itemIndex": 1, "details": [_type("type", "string", 2, "int")]}
                        ],
                    },
                )
            )
        ),
    ),
    (
        "additional-items-false",
        {"properties": {"a": {"items": [{"type": "number"}], "additionalItems": False}}},
        {"a": [1, "x", "y"]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "additionalItems",
                        "specifiedAs": {"additionalItems": False},
                        "reason": "found additional items",
                        "additionalItems": ["x", "y"],
                    },
                )
            )
        ),
    ),
    (
        "additional-items-schema",
        {
            "properties": {
                "a": {"items": [{"type": "number"}], "additionalItems": {"type": "object"}}
            }
        },
        {"a": [1, {}, "Extra"]},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "additionalItems",
                        "reason": "At least one additional item did not match the sub-schema",
                        "itemIndex": 2,
                        "details": [_type("type", "object", "Extra", "string")],
                    },
                )
            )
        ),
    ),
    (
        "all-of",
        {"allOf": [{"properties": {"a": {"minimum": 1}}}, {"properties": {"b": {"minimum": 2}}}]},
        {"a": 1, "b": 0},
        _js(
            {
                "operatorName": "allOf",
                "schemasNotSatisfied": [
                    {
                        "index": 1,
                        "details": [_props(_prop("b", _cmp("minimum", {"minimum": 2}, 0)))],
                    }
                ],
            }
        ),
    ),
    (
        "any-of",
        {"properties": {"a": {"anyOf": [{"type": "string"}, {"maximum": 3}]}}},
        {"a": 4},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "anyOf",
                        "schemasNotSatisfied": [
                            {"index": 0, "details": [_type("type", "string", 4, "int")]},
                            {"index": 1, "details": [_cmp("maximum", {"maximum": 3}, 4)]},
                        ],
                    },
                )
            )
        ),
    ),
    (
        "one-of-none",
        {"properties": {"a": {"oneOf": [{"minimum": 4}, {"bsonType": "int"}]}}},
        {"a": 2.1},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "oneOf",
                        "schemasNotSatisfied": [
                            {"index": 0, "details": [_cmp("minimum", {"minimum": 4}, 2.1)]},
                            {"index": 1, "details": [_type("bsonType", "int", 2.1, "double")]},
                        ],
                    },
                )
            )
        ),
    ),
    (
        "one-of-several",
        {"properties": {"a": {"oneOf": [{"minimum": 1}, {"maximum": 3}]}}},
        {"a": 2},
        _js(
            _props(
                _prop(
                    "a",
                    {
                        "operatorName": "oneOf",
                        "reason": "more than one subschema matched",
                        "matchingSchemaIndexes": [0, 1],
                    },
                )
            )
        ),
    ),
    (
        "not",
        {"not": {"properties": {"a": {"minimum": 3}}}},
        {"a": 6},
        _js({"operatorName": "not", "reason": "child expression matched"}),
    ),
    (
        "top-level-non-object-type",
        {"type": "number"},
        {"a": 1},
        {
            "operatorName": "$jsonSchema",
            "specifiedAs": {"$jsonSchema": {"type": "number"}},
            "reason": "expression always evaluates to false",
        },
    ),
]


@pytest.mark.parametrize(
    ("schema", "doc", "expected"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_failing_documents_get_mongods_details(
    schema: dict[str, Any], doc: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert compile_json_schema(schema)(doc) == expected


PASSES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("absent-property-is-fine", {"properties": {"a": {"type": "string"}}}, {"b": 1}),
    (
        "restrictions-ignore-other-types",
        {"properties": {"a": {"minimum": 5, "minLength": 9, "minItems": 3}}},
        {"a": {}},
    ),
    (
        "top-level-scalar-keywords-have-no-effect",
        {"minimum": 1, "maxLength": 0, "minItems": 3},
        {"a": 1},
    ),
    (
        "number-covers-all-numeric-types",
        {"properties": {"a": {"bsonType": "number"}}},
        {"a": Decimal128("1.5")},
    ),
    (
        "decimal-compared-exactly",
        {"properties": {"a": {"maximum": Decimal128("0.1")}}},
        {"a": Decimal128("0.1")},
    ),
    ("multiple-of-decimal-rounding", {"properties": {"a": {"multipleOf": 0.1}}}, {"a": 0.3}),
    ("pattern-is-a-partial-match", {"properties": {"a": {"pattern": "b+"}}}, {"a": "abbbc"}),
    (
        "enum-ignores-field-order-and-number-type",
        {"properties": {"a": {"enum": [{"x": 1, "y": 2}]}}},
        {"a": {"y": 2.0, "x": 1}},
    ),
    ("json-type-null", {"properties": {"a": {"type": ["null", "boolean"]}}}, {"a": None}),
    ("object-id", {"properties": {"_id": {"bsonType": "objectId"}}}, {"_id": ObjectId()}),
    (
        "one-of-exactly-one",
        {"properties": {"a": {"oneOf": [{"minimum": 5}, {"maximum": 3}]}}},
        {"a": 1},
    ),
    ("dependency-not-triggered", {"dependencies": {"a": ["b"]}}, {"b": 1}),
    (
        "additional-items-without-items-array",
        {"properties": {"a": {"additionalItems": False}}},
        {"a": [1, 2]},
    ),
    ("title-and-description-ignored", {"title": "x", "description": "y"}, {}),
    ("top-level-object-type", {"bsonType": "object", "required": ["_id"]}, {"_id": 1}),
]


@pytest.mark.parametrize(("schema", "doc"), [c[1:] for c in PASSES], ids=[c[0] for c in PASSES])
def test_valid_documents_pass(schema: dict[str, Any], doc: dict[str, Any]) -> None:
    assert compile_json_schema(schema)(doc) is None


BAD_SCHEMAS: list[tuple[Any, int, str]] = [
    ({"foo": 1}, 9, "Unknown $jsonSchema keyword: foo"),
    ({"format": "date"}, 9, "$jsonSchema keyword 'format' is not currently supported"),
    ({"$ref": "#/x"}, 9, "$jsonSchema keyword '$ref' is not currently supported"),
    (
        {"properties": {"a": {"default": 1}}},
        9,
        "$jsonSchema keyword 'default' is not currently supported",
    ),
    ({"type": "integer"}, 9, "$jsonSchema type 'integer' is not currently supported."),
    (
        {"bsonType": "int", "type": "number"},
        9,
        "Cannot specify both $jsonSchema keywords 'type' and 'bsonType'",
    ),
    ({"bsonType": "nope"}, 2, "Unknown type name alias: nope"),
    ({"type": "double"}, 2, "Unknown type name alias: double"),
    ({"minimum": "1"}, 14, "$jsonSchema keyword 'minimum' must be a number"),
    (
        {"exclusiveMinimum": True},
        9,
        "$jsonSchema keyword 'minimum' must be a present if exclusiveMinimum is present",
    ),
    ({"minLength": -1}, 9, "Expected a positive number in: minLength: -1"),
    ({"minItems": 1.5}, 9, "Expected an integer: minItems: 1.5"),
    ({"multipleOf": 0}, 9, "$jsonSchema keyword 'multipleOf' must have a positive value"),
    ({"required": []}, 9, "$jsonSchema keyword 'required' cannot be an empty array"),
    (
        {"required": ["a", "a"]},
        9,
        "$jsonSchema keyword 'required' array cannot contain duplicate values",
    ),
    ({"enum": []}, 9, "$jsonSchema keyword 'enum' cannot be an empty array"),
    (
        {"enum": [{"a": 1, "b": 2}, {"b": 2, "a": 1}]},
        9,
        "$jsonSchema keyword 'enum' array cannot contain duplicate values.",
    ),
    ({"allOf": []}, 2, "$jsonSchema keyword 'allOf' must be a non-empty array"),
    ({"properties": {"a": 1}}, 14, "Nested schema for $jsonSchema property 'a' must be an object"),
    ({"pattern": "("}, 51091, "Regular expression is invalid"),
    ({"uniqueItems": 1}, 14, "$jsonSchema keyword 'uniqueItems' must be a boolean"),
    ({"title": 1}, 14, "$jsonSchema keyword 'title' must be of type string"),
    ("not-an-object", 14, "$jsonSchema must be an object"),
]


@pytest.mark.parametrize(
    ("schema", "code", "message"), BAD_SCHEMAS, ids=[m[:40] for _, _, m in BAD_SCHEMAS]
)
def test_invalid_schemas_fail_to_compile_with_mongods_codes(
    schema: Any, code: int, message: str
) -> None:
    with pytest.raises(MongoError) as info:
        compile_json_schema(schema)
    assert info.value.code == code
    assert message in info.value.message


def test_validation_does_not_mutate_the_document() -> None:
    doc = {"a": [3, 3], "b": {"c": 1}}
    snapshot = {"a": [3, 3], "b": {"c": 1}}
    compile_json_schema({"properties": {"a": {"uniqueItems": True}, "b": {"required": ["x"]}}})(doc)
    assert doc == snapshot


# --- collection validators -----------------------------------------------------------------


SCHEMA = {"required": ["name"]}


@pytest.mark.parametrize(
    ("validator", "doc", "expected"),
    [
        ({"$jsonSchema": SCHEMA}, {"name": "x"}, None),
        ({"$jsonSchema": SCHEMA}, {}, _js(_required(["name"], ["name"]))),
        (
            {"status": {"$in": ["A", "B"]}},
            {"status": "C"},
            {
                "operatorName": "$in",
                "specifiedAs": {"status": {"$in": ["A", "B"]}},
                "reason": "no matching value found in array",
                "consideredValue": "C",
            },
        ),
        (
            {"$jsonSchema": SCHEMA, "status": "A"},
            {"status": "B"},
            {
                "operatorName": "$and",
                "clausesNotSatisfied": [
                    {"index": 0, "details": _js(_required(["name"], ["name"]))},
                    {
                        "index": 1,
                        "details": {
                            "operatorName": "$eq",
                            "specifiedAs": {"status": "A"},
                            "reason": "comparison failed",
                            "consideredValue": "B",
                        },
                    },
                ],
            },
        ),
        (
            {"$jsonSchema": SCHEMA, "qty": {"$gt": 0}},
            {"name": "n"},
            {
                "operatorName": "$and",
                "clausesNotSatisfied": [
                    {
                        "index": 1,
                        "details": {
                            "operatorName": "$gt",
                            "specifiedAs": {"qty": {"$gt": 0}},
                            "reason": "field was missing",
                        },
                    }
                ],
            },
        ),
        (
            {"$or": [{"a": 1}, {"$jsonSchema": SCHEMA}]},
            {"a": 2},
            {
                "operatorName": "$or",
                "clausesNotSatisfied": [
                    {
                        "index": 0,
                        "details": {
                            "operatorName": "$eq",
                            "specifiedAs": {"a": 1},
                            "reason": "comparison failed",
                            "consideredValue": 2,
                        },
                    },
                    {"index": 1, "details": _js(_required(["name"], ["name"]))},
                ],
            },
        ),
        (
            {"$nor": [{"$jsonSchema": SCHEMA}]},
            {"name": 1},
            {
                "operatorName": "$nor",
                "clausesSatisfied": [
                    {
                        "index": 0,
                        "details": {"operatorName": "$jsonSchema", "reason": "schema matched"},
                    }
                ],
            },
        ),
    ],
    ids=[
        "schema-pass",
        "schema-fail",
        "single-query-clause",
        "implicit-and",
        "missing-field",
        "or",
        "nor",
    ],
)
def test_collection_validator_details(
    validator: dict[str, Any], doc: dict[str, Any], expected: dict[str, Any] | None
) -> None:
    assert CollectionValidator(validator).check(doc, None) == expected


@pytest.mark.parametrize(
    ("level", "old", "rejected"),
    [
        ("strict", None, True),
        ("strict", {"name": "old"}, True),
        ("strict", {}, True),
        ("moderate", None, True),
        ("moderate", {"name": "old"}, True),
        ("moderate", {}, False),
        ("off", None, False),
        ("off", {"name": "old"}, False),
    ],
)
def test_validation_levels(level: str, old: dict[str, Any] | None, rejected: bool) -> None:
    """moderate skips updates to documents that already broke the rules (manual)."""
    validator = CollectionValidator({"$jsonSchema": SCHEMA}, level=level)
    assert (validator.check({"other": 1}, old) is not None) is rejected


def test_action_and_error_shape() -> None:
    validator = CollectionValidator({"$jsonSchema": SCHEMA}, action="warn")
    assert validator.action == "warn"
    details = validator.check({"_id": 7}, None)
    assert details is not None
    err = validator.error(7, details)
    assert (err.code, err.code_name, err.message) == (
        121,
        "DocumentValidationFailure",
        "Document failed validation",
    )
    assert err.to_reply()["errInfo"] == {"failingDocumentId": 7, "details": details}


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"level": "lenient"}, 2),
        ({"action": "ignore"}, 2),
        ({"validator": {"$jsonSchema": {"foo": 1}}}, 9),
        ({"validator": {"$where": "true"}}, 224),
    ],
)
def test_invalid_validators_are_rejected(kwargs: dict[str, Any], code: int) -> None:
    args: dict[str, Any] = {"validator": {"$jsonSchema": SCHEMA}, **kwargs}
    with pytest.raises(MongoError) as info:
        CollectionValidator(**args)
    assert info.value.code == code


def test_schema_only_validator_does_not_need_the_query_matcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(spec: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
        raise AssertionError("compile_filter should not be called")

    monkeypatch.setattr(validator_errors, "compile_filter", boom)
    assert CollectionValidator({"$jsonSchema": SCHEMA}).check({"name": 1}, None) is None


def test_real_matcher_integration() -> None:
    """With the real matching module (once present) query clauses are matched by it."""
    pytest.importorskip("mongosim.matching")
    validator = CollectionValidator({"$jsonSchema": SCHEMA, "qty": {"$gte": 0}})
    assert validator.check({"name": "a", "qty": 1}, None) is None
    details = validator.check({"name": "a", "qty": -1}, None)
    assert details is not None and details["operatorName"] == "$and"

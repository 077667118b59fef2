"""Compiles ``$jsonSchema`` documents into checks that explain their failures.

Each keyword becomes a ``Check``: a function of the value a (sub)schema applies to, returning
the error entries mongod (5.0+) reports for it in ``errInfo.details`` (empty when satisfied).
Shapes, reasons and keyword order follow the server: ``src/mongo/db/matcher/schema/
json_schema_parser.cpp`` (parsing, error codes) and ``src/mongo/db/matcher/doc_validation/
doc_validation_error.cpp`` with its ``doc_validation_error_json_schema_test.cpp`` (errors).

Semantics that shape this module (from json_schema_parser.cpp):
- restriction keywords (minimum, minLength, items, properties, ...) only apply to values of
  their type; a type mismatch is reported by ``type``/``bsonType`` alone;
- at the top level (the document itself) scalar and array keywords have no effect;
- a property that is absent is only reported by ``required``.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128

from .bsonutil import bson_type_name, canonical, compare, is_nan, is_number
from .errors import MongoError

Errors = list[dict[str, Any]]
Check = Callable[[Any], Errors]

NUMBER_TYPES = frozenset({"int", "long", "double", "decimal"})
# src/mongo/db/matcher/matcher_type_set.cpp: aliases of "bsonType" (plus "number").
BSON_TYPE_ALIASES = frozenset(
    {
        "double",
        "string",
        "object",
        "array",
        "binData",
        "undefined",
        "objectId",
        "bool",
        "date",
        "null",
        "regex",
        "dbPointer",
        "javascript",
        "symbol",
        "javascriptWithScope",
        "int",
        "timestamp",
        "long",
        "decimal",
        "minKey",
        "maxKey",
    }
)
# MatcherTypeSet::findJsonSchemaTypeAlias: the JSON Schema "type" names.
JSON_TYPE_ALIASES: dict[str, frozenset[str]] = {
    "array": frozenset({"array"}),
    "boolean": frozenset({"bool"}),
    "null": frozenset({"null"}),
    "object": frozenset({"object"}),
    "string": frozenset({"string"}),
    "number": NUMBER_TYPES,
}
KNOWN_KEYWORDS = frozenset(
    {
        "additionalItems",
        "additionalProperties",
        "allOf",
        "anyOf",
        "bsonType",
        "dependencies",
        "description",
        "encrypt",
        "encryptMetadata",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "items",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "not",
        "oneOf",
        "pattern",
        "patternProperties",
        "properties",
        "required",
        "title",
        "type",
        "uniqueItems",
    }
)
UNSUPPORTED_KEYWORDS = frozenset({"$ref", "$schema", "default", "definitions", "format", "id"})

# Decimal128::modulo works on decimals; doubles are first rounded to 15 digits as the
# server's Decimal128(double) constructor does (kRoundTo15Digits).
_DECIMAL = decimal.Context(prec=34, traps=[])


def _failed_to_parse(message: str) -> MongoError:
    return MongoError(9, message)


def _type_mismatch(message: str) -> MongoError:
    return MongoError(14, message)


def type_of(value: Any) -> str:
    """The BSON type alias of a decoded value, as ``$type`` and errInfo name it."""
    if isinstance(value, Code):
        return "javascriptWithScope" if value.scope is not None else "javascript"
    if isinstance(value, DBRef):
        return "object"
    return bson_type_name(value)


def unordered_key(value: Any) -> Hashable:
    """Equality key ignoring field order, as UnorderedFieldsBSONElementComparator compares."""
    if isinstance(value, Mapping):
        return (5, tuple(sorted((k, unordered_key(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return (6, tuple(unordered_key(v) for v in value))
    return canonical(value)


def schema_notes(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The title/description a schema carries into its error entries."""
    return {k: schema[k] for k in ("title", "description") if isinstance(schema.get(k), str)}


@dataclass(slots=True)
class Subschema:
    """A compiled (sub)schema: its checks run in mongod's keyword order."""

    checks: list[Check]
    annotations: dict[str, Any]
    always_false: dict[str, Any] | None = None

    def errors(self, value: Any) -> Errors:
        if self.always_false is not None:
            return [self.always_false]
        out: Errors = []
        for check in self.checks:
            out.extend(check(value))
        return out

    def matches(self, value: Any) -> bool:
        return not self.errors(value)


@dataclass(slots=True)
class Ctx:
    """What a keyword builder sees: its schema, whether it is the top level, the recursion."""

    schema: Mapping[str, Any]
    root: bool  # the schema applies to the document itself (no path)
    compile: Callable[[Mapping[str, Any], bool], Subschema]
    checks: list[Check] = field(default_factory=list)


def restricted(kinds: frozenset[str], check: Check) -> Check:
    """A keyword that only constrains values of its own type (JSON Schema semantics)."""

    def run(value: Any) -> Errors:
        return check(value) if type_of(value) in kinds else []

    return run


def leaf_error(name: str, spec: Mapping[str, Any], reason: str, **extra: Any) -> dict[str, Any]:
    return {"operatorName": name, "specifiedAs": dict(spec), "reason": reason, **extra}


def count(schema: Mapping[str, Any], name: str) -> int:
    """parseIntegerElementToNonNegativeLong, with its FailedToParse messages."""
    value = schema[name]
    if not is_number(value):
        raise _failed_to_parse(f"Expected a number in: {name}: {value!r}")
    number = value.to_decimal() if isinstance(value, Decimal128) else value
    if number != number or number in (float("inf"), float("-inf")) or int(number) != number:
        raise _failed_to_parse(f"Expected an integer: {name}: {value!r}")
    if number < 0:
        raise _failed_to_parse(f"Expected a positive number in: {name}: {value!r}")
    return int(number)


def compile_regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        # RegexMatchExpression's assertion (server code 51091).
        raise MongoError(51091, f"Regular expression is invalid: {exc}") from exc


def to_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, float):
        return decimal.Decimal(format(value, ".15g"))
    return decimal.Decimal(int(value))


def parse_type_set(name: str, spec: Any) -> frozenset[str]:
    """JSONSchemaParser::parseTypeSet for ``type`` (JSON names) or ``bsonType``."""
    if isinstance(spec, str):
        aliases = [spec]
    elif isinstance(spec, list):
        if not all(isinstance(a, str) for a in spec):
            raise _type_mismatch(f"$jsonSchema keyword '{name}' array elements must be strings")
        aliases = list(spec)
        for alias in aliases:
            if aliases.count(alias) > 1:
                raise _failed_to_parse(f"$jsonSchema keyword '{name}' has duplicate value: {alias}")
    else:
        raise _type_mismatch(
            f"$jsonSchema keyword '{name}' must be either a string or an array of strings"
        )
    types: set[str] = set()
    for alias in aliases:
        if alias == "integer":
            raise _failed_to_parse("$jsonSchema type 'integer' is not currently supported.")
        types |= _resolve_alias(name, alias)
    if not types:
        raise _failed_to_parse(f"$jsonSchema keyword '{name}' must name at least one type")
    return frozenset(types)


def _resolve_alias(name: str, alias: str) -> frozenset[str]:
    if name == "type":
        found = JSON_TYPE_ALIASES.get(alias)
    elif alias == "number":
        found = NUMBER_TYPES
    else:
        found = frozenset({alias}) if alias in BSON_TYPE_ALIASES else None
    if found is None:
        raise MongoError(2, f"Unknown type name alias: {alias}")
    return found


# --- scalar keywords -----------------------------------------------------------------------


def _pattern(ctx: Ctx) -> None:
    if "pattern" not in ctx.schema:
        return
    spec = ctx.schema["pattern"]
    if not isinstance(spec, str):
        raise _type_mismatch("$jsonSchema keyword 'pattern' must be a string")
    regex = compile_regex(spec)
    if ctx.root:
        return

    def check(value: str) -> Errors:
        if regex.search(value):
            return []
        return [
            leaf_error(
                "pattern",
                {"pattern": spec},
                "regular expression did not match",
                consideredValue=value,
            )
        ]

    ctx.checks.append(restricted(frozenset({"string"}), check))


def _length(name: str, too_short: bool) -> Callable[[Ctx], None]:
    def build(ctx: Ctx) -> None:
        if name not in ctx.schema:
            return
        limit = count(ctx.schema, name)
        if ctx.root:
            return

        def check(value: str) -> Errors:
            size = len(value)  # code points, as InternalSchemaStrLengthMatchExpression counts
            if (size >= limit) if too_short else (size <= limit):
                return []
            return [
                leaf_error(
                    name,
                    {name: ctx.schema[name]},
                    "specified string length was not satisfied",
                    consideredValue=value,
                )
            ]

        ctx.checks.append(restricted(frozenset({"string"}), check))

    return build


def _multiple_of(ctx: Ctx) -> None:
    if "multipleOf" not in ctx.schema:
        return
    spec = ctx.schema["multipleOf"]
    if not is_number(spec):
        raise _type_mismatch("$jsonSchema keyword 'multipleOf' must be a number")
    divisor = to_decimal(spec)
    if divisor.is_nan() or divisor <= 0:
        raise _failed_to_parse("$jsonSchema keyword 'multipleOf' must have a positive value")
    if ctx.root:
        return

    def check(value: Any) -> Errors:
        remainder = _DECIMAL.remainder(to_decimal(value), divisor)
        if not remainder.is_nan() and remainder == 0:
            return []
        return [
            leaf_error(
                "multipleOf",
                {"multipleOf": spec},
                "considered value is not a multiple of the specified value",
                consideredValue=value,
            )
        ]

    ctx.checks.append(restricted(NUMBER_TYPES, check))


def _bound(name: str, exclusive_name: str, sign: int) -> Callable[[Ctx], None]:
    """maximum (sign 1) / minimum (sign -1), with their boolean exclusive flags (draft 4)."""

    def build(ctx: Ctx) -> None:
        if name not in ctx.schema:
            if exclusive_name in ctx.schema:
                raise _failed_to_parse(
                    f"$jsonSchema keyword '{name}' must be a present if {exclusive_name} is present"
                )
            return
        bound = ctx.schema[name]
        if not is_number(bound):
            raise _type_mismatch(f"$jsonSchema keyword '{name}' must be a number")
        exclusive = ctx.schema.get(exclusive_name, False)
        if not isinstance(exclusive, bool):
            raise _type_mismatch(f"$jsonSchema keyword '{exclusive_name}' must be a boolean")
        spec = {name: bound, exclusive_name: True} if exclusive else {name: bound}
        if ctx.root:
            return

        def check(value: Any) -> Errors:
            if _within(value, bound, sign, exclusive):
                return []
            return [leaf_error(name, spec, "comparison failed", consideredValue=value)]

        ctx.checks.append(restricted(NUMBER_TYPES, check))

    return build


def _within(value: Any, bound: Any, sign: int, exclusive: bool) -> bool:
    if is_nan(value) or is_nan(bound):
        # ComparisonMatchExpressionBase: NaN only equals NaN; every other comparison fails.
        return not exclusive and is_nan(value) and is_nan(bound)
    cmp = compare(value, bound) * sign
    return cmp < 0 if exclusive else cmp <= 0


# --- array keywords ------------------------------------------------------------------------


def _items_count(name: str, too_few: bool) -> Callable[[Ctx], None]:
    def build(ctx: Ctx) -> None:
        if name not in ctx.schema:
            return
        limit = count(ctx.schema, name)
        if ctx.root:
            return

        def check(value: list[Any]) -> Errors:
            if (len(value) >= limit) if too_few else (len(value) <= limit):
                return []
            return [
                leaf_error(
                    name,
                    {name: ctx.schema[name]},
                    "array did not match specified length",
                    consideredValue=value,
                    numberOfItems=len(value),
                )
            ]

        ctx.checks.append(restricted(frozenset({"array"}), check))

    return build


def _unique_items(ctx: Ctx) -> None:
    if "uniqueItems" not in ctx.schema:
        return
    spec = ctx.schema["uniqueItems"]
    if not isinstance(spec, bool):
        raise _type_mismatch("$jsonSchema keyword 'uniqueItems' must be a boolean")
    if ctx.root or not spec:
        return

    def check(value: list[Any]) -> Errors:
        seen: set[Hashable] = set()
        for item in value:
            key = unordered_key(item)
            if key in seen:
                return [
                    leaf_error(
                        "uniqueItems",
                        {"uniqueItems": True},
                        "found a duplicate item",
                        consideredValue=value,
                        duplicatedValue=item,
                    )
                ]
            seen.add(key)
        return []

    ctx.checks.append(restricted(frozenset({"array"}), check))


def _items(ctx: Ctx) -> None:
    spec = ctx.schema.get("items")
    if spec is None:
        _additional_items(ctx, None)
        return
    if isinstance(spec, Mapping):
        sub = ctx.compile(spec, False)
        if not ctx.root:
            ctx.checks.append(restricted(frozenset({"array"}), _items_single(sub)))
        _additional_items(ctx, None)
        return
    if not isinstance(spec, list):
        raise _type_mismatch(
            f"$jsonSchema keyword 'items' must be an array or an object, not {type_of(spec)}"
        )
    subs = []
    for entry in spec:
        if not isinstance(entry, Mapping):
            raise _type_mismatch(
                "$jsonSchema keyword 'items' requires that each element of the "
                f"array is an object, but found a {type_of(entry)}"
            )
        subs.append(ctx.compile(entry, False))
    if not ctx.root and subs:
        ctx.checks.append(restricted(frozenset({"array"}), _items_tuple(subs)))
    _additional_items(ctx, len(subs))


def _items_single(sub: Subschema) -> Check:
    def check(value: list[Any]) -> Errors:
        for index, item in enumerate(value):
            errors = sub.errors(item)
            if errors:
                return [
                    {
                        "operatorName": "items",
                        **sub.annotations,
                        "reason": "At least one item did not match the sub-schema",
                        "itemIndex": index,
                        "details": errors,
                    }
                ]
        return []

    return check


def _items_tuple(subs: list[Subschema]) -> Check:
    def check(value: list[Any]) -> Errors:
        failed = []
        for index, (sub, item) in enumerate(zip(subs, value, strict=False)):
            errors = sub.errors(item)
            if errors:
                failed.append({"itemIndex": index, "details": errors})
        return [{"operatorName": "items", "details": failed}] if failed else []

    return check


def _additional_items(ctx: Ctx, start: int | None) -> None:
    if "additionalItems" not in ctx.schema:
        return
    spec = ctx.schema["additionalItems"]
    if isinstance(spec, bool):
        sub = None
    elif isinstance(spec, Mapping):
        sub = ctx.compile(spec, False)
    else:
        raise _type_mismatch(
            "$jsonSchema keyword 'additionalItems' must be either an object "
            f"or a boolean, but got a {type_of(spec)}"
        )
    # Only meaningful after an array of "items" schemas; otherwise the keyword is inert.
    if ctx.root or start is None or spec is True:
        return

    def check(value: list[Any]) -> Errors:
        extra = value[start:]
        if sub is None:
            if not extra:
                return []
            return [
                leaf_error(
                    "additionalItems",
                    {"additionalItems": False},
                    "found additional items",
                    additionalItems=list(extra),
                )
            ]
        for offset, item in enumerate(extra):
            errors = sub.errors(item)
            if errors:
                return [
                    {
                        "operatorName": "additionalItems",
                        **sub.annotations,
                        "reason": "At least one additional item did not match the sub-schema",
                        "itemIndex": start + offset,
                        "details": errors,
                    }
                ]
        return []

    ctx.checks.append(restricted(frozenset({"array"}), check))


SCALAR_AND_ARRAY_BUILDERS: tuple[Callable[[Ctx], None], ...] = (
    _pattern,
    _length("maxLength", too_short=False),
    _length("minLength", too_short=True),
    _multiple_of,
    _bound("maximum", "exclusiveMaximum", 1),
    _bound("minimum", "exclusiveMinimum", -1),
    _items_count("minItems", too_few=True),
    _items_count("maxItems", too_few=False),
    _unique_items,
    _items,
)

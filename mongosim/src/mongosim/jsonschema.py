"""MongoDB's ``$jsonSchema``.

``compile_json_schema`` turns a schema into a function returning ``None`` for a valid document
or the ``details`` mongod (5.0+) puts in ``errInfo`` of a DocumentValidationFailure (121).
Scalar and array keywords are in ``jsonschema_keywords``; object and logical keywords here;
a collection's validator, which may hold a ``$jsonSchema``, is in ``validator_errors``.
Sources: MongoDB manual "$jsonSchema" / "JSON Schema omissions"; server
``src/mongo/db/matcher/schema/json_schema_parser.cpp`` and
``src/mongo/db/matcher/doc_validation/doc_validation_error_json_schema_test.cpp``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from .errors import MongoError
from .jsonschema_keywords import (
    KNOWN_KEYWORDS,
    SCALAR_AND_ARRAY_BUILDERS,
    UNSUPPORTED_KEYWORDS,
    Check,
    Ctx,
    Errors,
    Subschema,
    compile_regex,
    count,
    leaf_error,
    parse_type_set,
    schema_notes,
    type_of,
    unordered_key,
)

Details = dict[str, Any]


def _type_mismatch(message: str) -> MongoError:
    return MongoError(14, message)


def _for_objects(check: Check) -> Check:
    """Object keywords constrain only embedded documents (a DBRef is not walked)."""

    def run(value: Any) -> Errors:
        return check(value) if isinstance(value, Mapping) else []

    return run


def _failed_to_parse(message: str) -> MongoError:
    return MongoError(9, message)


# --- object keywords -----------------------------------------------------------------------


def _required_names(schema: Mapping[str, Any]) -> list[str]:
    spec = schema.get("required")
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise _type_mismatch(
            "$jsonSchema keyword 'required' must be an array, but found an "
            f"element of type {type_of(spec)}"
        )
    for name in spec:
        if not isinstance(name, str):
            raise _type_mismatch(
                "$jsonSchema keyword 'required' must be an array of strings, "
                f"but found an element of type: {type_of(name)}"
            )
    if len(set(spec)) != len(spec):
        raise _failed_to_parse(
            "$jsonSchema keyword 'required' array cannot contain duplicate values"
        )
    if not spec:
        raise _failed_to_parse("$jsonSchema keyword 'required' cannot be an empty array")
    return list(spec)


def _properties(ctx: Ctx) -> None:
    spec = ctx.schema.get("properties")
    if spec is None:
        return
    if not isinstance(spec, Mapping):
        raise _type_mismatch("$jsonSchema keyword 'properties' must be an object")
    subs: list[tuple[str, Subschema]] = []
    for name, sub in spec.items():
        if not isinstance(sub, Mapping):
            raise _type_mismatch(
                f"Nested schema for $jsonSchema property '{name}' must be an object"
            )
        subs.append((name, ctx.compile(sub, False)))

    def check(value: Mapping[str, Any]) -> Errors:
        failed = []
        for name, sub in subs:
            if name in value:  # an absent property is only ever reported by "required"
                errors = sub.errors(value[name])
                if errors:
                    failed.append({"propertyName": name, **sub.annotations, "details": errors})
        return [{"operatorName": "properties", "propertiesNotSatisfied": failed}] if failed else []

    ctx.checks.append(_for_objects(check))


def _allowed_properties(ctx: Ctx) -> None:
    """additionalProperties and patternProperties: one server expression, two error entries."""
    if "additionalProperties" not in ctx.schema and "patternProperties" not in ctx.schema:
        return
    named = frozenset(ctx.schema.get("properties") or ())
    patterns = _pattern_properties(ctx)
    spec = ctx.schema.get("additionalProperties", True)
    if not isinstance(spec, bool | Mapping):
        raise _type_mismatch(
            "$jsonSchema keyword 'additionalProperties' must be an object or a boolean"
        )
    extra_schema = ctx.compile(spec, False) if isinstance(spec, Mapping) else None

    def check(value: Mapping[str, Any]) -> Errors:
        additional = [
            k for k in value if k not in named and not any(rx.search(k) for _, rx, _ in patterns)
        ]
        out: Errors = []
        if spec is False and additional:
            out.append(
                {
                    "operatorName": "additionalProperties",
                    "specifiedAs": {"additionalProperties": False},
                    "additionalProperties": additional,
                }
            )
        elif extra_schema is not None:
            out.extend(_first_failing_additional(extra_schema, value, additional))
        failed = _pattern_failures(patterns, value)
        if failed:
            out.append({"operatorName": "patternProperties", "details": failed})
        return out

    ctx.checks.append(_for_objects(check))


def _pattern_properties(ctx: Ctx) -> list[tuple[str, Any, Subschema]]:
    spec = ctx.schema.get("patternProperties")
    if spec is None:
        return []
    if not isinstance(spec, Mapping):
        raise _type_mismatch("$jsonSchema keyword 'patternProperties' must be an object")
    out = []
    for raw, sub in spec.items():
        if not isinstance(sub, Mapping):
            raise _type_mismatch(
                f"$jsonSchema keyword 'patternProperties' has property '{raw}' "
                "which is not an object"
            )
        out.append((raw, compile_regex(raw), ctx.compile(sub, False)))
    return out


def _first_failing_additional(
    sub: Subschema, value: Mapping[str, Any], additional: list[str]
) -> Errors:
    for name in additional:
        errors = sub.errors(value[name])
        if errors:
            return [
                {
                    "operatorName": "additionalProperties",
                    **sub.annotations,
                    "reason": "at least one additional property did not match the subschema",
                    "failingProperty": name,
                    "details": errors,
                }
            ]
    return []


def _pattern_failures(
    patterns: list[tuple[str, Any, Subschema]], value: Mapping[str, Any]
) -> Errors:
    failed: Errors = []
    for raw, rx, sub in patterns:
        # Only the first failing property per pattern is reported, as the server does.
        for name, item in value.items():
            errors = sub.errors(item) if rx.search(name) else []
            if errors:
                failed.append(
                    {
                        "propertyName": name,
                        **sub.annotations,
                        "regexMatched": raw,
                        "details": errors,
                    }
                )
                break
    return failed


def _required(ctx: Ctx) -> None:
    names = _required_names(ctx.schema)
    if not names:
        return
    spec = ctx.schema["required"]
    ordered = sorted(names)  # translateRequired sorts the property names

    def check(value: Mapping[str, Any]) -> Errors:
        missing = [n for n in ordered if n not in value]
        if not missing:
            return []
        return [
            {
                "operatorName": "required",
                "specifiedAs": {"required": spec},
                "missingProperties": missing,
            }
        ]

    ctx.checks.append(_for_objects(check))


def _num_properties(name: str, too_few: bool) -> Callable[[Ctx], None]:
    def build(ctx: Ctx) -> None:
        if name not in ctx.schema:
            return
        limit = count(ctx.schema, name)

        def check(value: Mapping[str, Any]) -> Errors:
            n = len(value)
            if (n >= limit) if too_few else (n <= limit):
                return []
            return [
                leaf_error(
                    name,
                    {name: ctx.schema[name]},
                    "specified number of properties was not satisfied",
                    numberOfProperties=n,
                )
            ]

        # Unlike scalar keywords these apply at the top level too (to the document).
        ctx.checks.append(_for_objects(check))

    return build


def _dependencies(ctx: Ctx) -> None:
    spec = ctx.schema.get("dependencies")
    if spec is None:
        return
    if not isinstance(spec, Mapping):
        raise _type_mismatch("$jsonSchema keyword 'dependencies' must be an object")
    rules: list[tuple[str, Subschema | list[str]]] = []
    for name, dep in spec.items():
        if name in ("title", "description") and isinstance(dep, str):
            continue
        if isinstance(dep, Mapping):
            rules.append((name, ctx.compile(dep, ctx.root)))
        elif isinstance(dep, list):
            rules.append((name, _property_dependency(name, dep)))
        else:
            raise _type_mismatch(
                f"property '{name}' in $jsonSchema keyword 'dependencies' must "
                "be either an object or an array"
            )
    notes = schema_notes(spec)

    def check(value: Mapping[str, Any]) -> Errors:
        failing = []
        for name, rule in rules:
            if name not in value:
                continue
            if isinstance(rule, Subschema):
                errors = rule.errors(value)
                if errors:
                    failing.append({"conditionalProperty": name, "details": errors})
            else:
                missing = [p for p in rule if p not in value]
                if missing:
                    failing.append({"conditionalProperty": name, "missingProperties": missing})
        if not failing:
            return []
        return [{"operatorName": "dependencies", **notes, "failingDependencies": failing}]

    ctx.checks.append(_for_objects(check))


def _property_dependency(name: str, dep: list[Any]) -> list[str]:
    where = "in $jsonSchema keyword 'dependencies'"
    if not dep:
        raise _failed_to_parse(f"property '{name}' {where} cannot be an empty array")
    for item in dep:
        if not isinstance(item, str):
            raise _type_mismatch(
                f"array '{name}' {where} can only contain strings, but found "
                f"element of type: {type_of(item)}"
            )
        if dep.count(item) > 1:
            raise _failed_to_parse(f"array '{name}' {where} contains duplicate element: {item}")
    return list(dep)


# --- logical keywords ----------------------------------------------------------------------


def _subschemas(ctx: Ctx, name: str) -> list[Subschema] | None:
    spec = ctx.schema.get(name)
    if spec is None:
        return None
    if not isinstance(spec, list):
        raise _type_mismatch(f"$jsonSchema keyword '{name}' must be an array")
    if not spec:
        raise MongoError(2, f"$jsonSchema keyword '{name}' must be a non-empty array")
    subs = []
    for entry in spec:
        if not isinstance(entry, Mapping):
            raise _type_mismatch(
                f"$jsonSchema keyword '{name}' must be an array of objects, but "
                f"found an element of type {type_of(entry)}"
            )
        subs.append(ctx.compile(entry, ctx.root))  # same path as the parent schema
    return subs


def _clauses(subs: list[Subschema], results: list[Errors], only_failed: bool = True) -> Errors:
    return [
        {"index": i, **sub.annotations, "details": errors}
        for i, (sub, errors) in enumerate(zip(subs, results, strict=True))
        if errors or not only_failed
    ]


def _all_of(ctx: Ctx) -> None:
    subs = _subschemas(ctx, "allOf")
    if subs is None:
        return

    def check(value: Any) -> Errors:
        failed = _clauses(subs, [s.errors(value) for s in subs])
        return [{"operatorName": "allOf", "schemasNotSatisfied": failed}] if failed else []

    ctx.checks.append(check)


def _any_of(ctx: Ctx) -> None:
    subs = _subschemas(ctx, "anyOf")
    if subs is None:
        return

    def check(value: Any) -> Errors:
        results = []
        for sub in subs:
            errors = sub.errors(value)
            if not errors:
                return []
            results.append(errors)
        return [{"operatorName": "anyOf", "schemasNotSatisfied": _clauses(subs, results)}]

    ctx.checks.append(check)


def _one_of(ctx: Ctx) -> None:
    subs = _subschemas(ctx, "oneOf")
    if subs is None:
        return

    def check(value: Any) -> Errors:
        results = [s.errors(value) for s in subs]
        matching = [i for i, errors in enumerate(results) if not errors]
        if len(matching) == 1:
            return []
        if matching:
            return [
                {
                    "operatorName": "oneOf",
                    "reason": "more than one subschema matched",
                    "matchingSchemaIndexes": matching,
                }
            ]
        return [{"operatorName": "oneOf", "schemasNotSatisfied": _clauses(subs, results)}]

    ctx.checks.append(check)


def _not(ctx: Ctx) -> None:
    spec = ctx.schema.get("not")
    if spec is None:
        return
    if not isinstance(spec, Mapping):
        raise _type_mismatch(
            "$jsonSchema keyword 'not' must be an object, but found an element "
            f"of type {type_of(spec)}"
        )
    sub = ctx.compile(spec, ctx.root)

    def check(value: Any) -> Errors:
        if sub.errors(value):
            return []
        return [{"operatorName": "not", "reason": "child expression matched"}]

    ctx.checks.append(check)


def _enum(ctx: Ctx) -> None:
    spec = ctx.schema.get("enum")
    if spec is None:
        return
    if not isinstance(spec, list):
        raise _type_mismatch(
            "$jsonSchema keyword 'enum' must be an array, but found an element "
            f"of type {type_of(spec)}"
        )
    if not spec:
        raise _failed_to_parse("$jsonSchema keyword 'enum' cannot be an empty array")
    keys = [unordered_key(v) for v in spec]
    if len(set(keys)) != len(keys):
        raise _failed_to_parse("$jsonSchema keyword 'enum' array cannot contain duplicate values.")
    allowed: set[Hashable] = set(keys)
    if ctx.root:
        # Only documents can be stored, so non-object members can never match at the top.
        allowed = {k for k, v in zip(keys, spec, strict=True) if isinstance(v, Mapping)}
        if not allowed:
            ctx.checks.append(
                lambda _v: [
                    leaf_error("enum", {"enum": spec}, "expression always evaluates to false")
                ]
            )
            return

    def check(value: Any) -> Errors:
        if unordered_key(value) in allowed:
            return []
        return [
            leaf_error("enum", {"enum": spec}, "value was not found in enum", consideredValue=value)
        ]

    ctx.checks.append(check)


_OBJECT_AND_LOGICAL_BUILDERS: tuple[Callable[[Ctx], None], ...] = (
    _properties,
    _allowed_properties,
    _required,
    _num_properties("minProperties", too_few=True),
    _num_properties("maxProperties", too_few=False),
    _dependencies,
    _all_of,
    _any_of,
    _one_of,
    _not,
    _enum,
)


# --- schemas -------------------------------------------------------------------------------


def _check_keywords(schema: Mapping[str, Any]) -> None:
    for key in schema:
        if key in UNSUPPORTED_KEYWORDS:
            raise _failed_to_parse(f"$jsonSchema keyword '{key}' is not currently supported")
        if key not in KNOWN_KEYWORDS:
            raise _failed_to_parse(f"Unknown $jsonSchema keyword: {key}")
        if key in ("encrypt", "encryptMetadata"):
            raise _failed_to_parse(f"$jsonSchema keyword '{key}' is not supported by mongosim")
    for key in ("description", "title"):
        if key in schema and not isinstance(schema[key], str):
            raise _type_mismatch(f"$jsonSchema keyword '{key}' must be of type string")
    if "type" in schema and "bsonType" in schema:
        raise _failed_to_parse("Cannot specify both $jsonSchema keywords 'type' and 'bsonType'")


def _type_check(name: str, spec: Any, types: frozenset[str]) -> Check:
    def check(value: Any) -> Errors:
        considered = type_of(value)
        if considered in types:
            return []
        return [
            leaf_error(
                name,
                {name: spec},
                "type did not match",
                consideredValue=value,
                consideredType=considered,
            )
        ]

    return check


def compile_schema(schema: Mapping[str, Any], root: bool) -> Subschema:
    """Compile one (sub)schema; ``root`` when it applies to the whole document."""
    _check_keywords(schema)
    type_name = "type" if "type" in schema else "bsonType" if "bsonType" in schema else None
    types = parse_type_set(type_name, schema[type_name]) if type_name else None
    ctx = Ctx(schema, root, compile_schema)
    for build in (*SCALAR_AND_ARRAY_BUILDERS, *_OBJECT_AND_LOGICAL_BUILDERS):
        build(ctx)
    sub = Subschema(ctx.checks, schema_notes(schema))
    if types is not None and type_name is not None:
        if not root:
            sub.checks.append(_type_check(type_name, schema[type_name], types))
        elif "object" not in types:
            # Only documents are stored: a top-level schema of another type matches nothing.
            sub.always_false = {
                "operatorName": "$jsonSchema",
                "specifiedAs": {"$jsonSchema": schema},
                "reason": "expression always evaluates to false",
            }
    return sub


def compile_json_schema(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], Details | None]:
    """A validator for ``{$jsonSchema: schema}``: None when a document passes, else details."""
    if not isinstance(schema, Mapping):
        raise _type_mismatch("$jsonSchema must be an object")
    sub = compile_schema(schema, root=True)

    def validate(doc: Mapping[str, Any]) -> Details | None:
        if sub.always_false is not None:
            return dict(sub.always_false)
        errors = sub.errors(doc)
        if not errors:
            return None
        return {"operatorName": "$jsonSchema", **sub.annotations, "schemaRulesNotSatisfied": errors}

    return validate

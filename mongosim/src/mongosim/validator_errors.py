"""Collection validators, and why a document fails one that is a plain query.

A validator is an implicit ``$and`` of clauses; mongod (5.0+) reports the failing clauses as
``{operatorName: "$and", clausesNotSatisfied: [{index, details}]}``, or the single clause's
details when there is only one (``doc_validation_error.cpp``). ``$jsonSchema`` clauses get
their exact details from ``jsonschema``; other operators get approximate leaf entries
(``operatorName``, ``specifiedAs``, ``reason``, ``consideredValue``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .bsonutil import MISSING, get_path
from .errors import MongoError
from .jsonschema import compile_json_schema
from .matching import compile_filter

Details = dict[str, Any]
Explain = Callable[[Mapping[str, Any]], Details | None]
SchemaCompiler = Callable[[Mapping[str, Any]], Explain]
FilterCompiler = Callable[[Mapping[str, Any]], Callable[[Mapping[str, Any]], bool]]

# Reasons from doc_validation_error.cpp, per operator (normal, not inverted, context).
_REASONS = {
    "$eq": "comparison failed",
    "$ne": "comparison succeeded",
    "$gt": "comparison failed",
    "$gte": "comparison failed",
    "$lt": "comparison failed",
    "$lte": "comparison failed",
    "$in": "no matching value found in array",
    "$nin": "matching value found in array",
    "$exists": "path does not exist",
    "$type": "type did not match",
    "$regex": "regular expression did not match",
    "$size": "array length was not equal to given size",
    "$all": "array did not contain all specified values",
    "$elemMatch": "array did not satisfy the child predicate",
    "$mod": "$mod did not evaluate to expected remainder",
    **dict.fromkeys(
        ("$bitsAllSet", "$bitsAllClear", "$bitsAnySet", "$bitsAnyClear"),
        "bitwise operator failed to match",
    ),
}
# Operators that can fail on an absent field without the field being "missing" in mongod's sense.
_MISSING_IS_NOT_THE_REASON = frozenset({"$exists", "$ne", "$nin", "$not", "$type", "$size"})
# Query operators a validator may not use (collection validators: "Restrictions").
_FORBIDDEN = ("$where", "$text", "$near", "$nearSphere", "$geoNear")


def query_clause_checker(query: Mapping[str, Any], schema_compiler: SchemaCompiler) -> Explain:
    """Compile ``query`` (now, so a bad validator fails at create time) into an explainer."""
    return _implicit_and(_clauses(query, schema_compiler, compile_filter))


def _implicit_and(clauses: list[Explain]) -> Explain:
    def explain(doc: Mapping[str, Any]) -> Details | None:
        failed = [(i, d) for i, c in enumerate(clauses) if (d := c(doc)) is not None]
        if not failed:
            return None
        if len(clauses) == 1:
            return failed[0][1]
        return {
            "operatorName": "$and",
            "clausesNotSatisfied": [{"index": i, "details": d} for i, d in failed],
        }

    return explain


def _clauses(
    query: Mapping[str, Any],
    schema_compiler: SchemaCompiler,
    compile_filter: FilterCompiler,
) -> list[Explain]:
    out: list[Explain] = []
    for key, value in query.items():
        if key in _FORBIDDEN:
            raise MongoError(
                224,
                f"{key} is not allowed in collection validators",
                code_name="QueryFeatureNotAllowed",
            )
        if key == "$jsonSchema":
            out.append(schema_compiler(value))
        elif key in ("$and", "$or", "$nor"):
            out.append(_logical(key, value, schema_compiler, compile_filter))
        elif key == "$comment":
            continue
        elif key.startswith("$"):
            out.append(_opaque(key, {key: value}, compile_filter))
        elif isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
            out.extend(_field_operators(key, value, compile_filter))
        else:
            out.append(_leaf(key, "$eq", {key: value}, compile_filter))
    return out


def _logical(
    op: str,
    branches: Any,
    schema_compiler: SchemaCompiler,
    compile_filter: FilterCompiler,
) -> Explain:
    if not isinstance(branches, list) or not branches:
        raise MongoError(2, f"{op} argument must be a non-empty array")
    if not all(isinstance(b, Mapping) for b in branches):
        raise MongoError(2, f"{op} argument's entries must be objects")
    children = [_implicit_and(_clauses(b, schema_compiler, compile_filter)) for b in branches]

    def explain(doc: Mapping[str, Any]) -> Details | None:
        results = [c(doc) for c in children]
        if op == "$nor":
            matched = [i for i, r in enumerate(results) if r is None]
            if not matched:
                return None
            return {
                "operatorName": "$nor",
                "clausesSatisfied": [
                    {"index": i, "details": _inverted(branches[i])} for i in matched
                ],
            }
        failed = [(i, r) for i, r in enumerate(results) if r is not None]
        if (op == "$and" and not failed) or (op == "$or" and len(failed) < len(results)):
            return None
        return {
            "operatorName": op,
            "clausesNotSatisfied": [{"index": i, "details": r} for i, r in failed],
        }

    return explain


def _inverted(branch: Mapping[str, Any]) -> Details:
    if "$jsonSchema" in branch and len(branch) == 1:
        return {"operatorName": "$jsonSchema", "reason": "schema matched"}
    return {"specifiedAs": dict(branch), "reason": "expression matched"}


def _field_operators(
    path: str,
    ops: Mapping[str, Any],
    compile_filter: FilterCompiler,
) -> list[Explain]:
    # mongod parses {a: {$gt: 1, $lt: 5}} into two clauses of the top-level $and.
    out = []
    for op, arg in ops.items():
        if op == "$options":
            continue
        spec: dict[str, Any] = {op: arg}
        if op == "$regex" and "$options" in ops:
            spec["$options"] = ops["$options"]
        out.append(_leaf(path, op, {path: spec}, compile_filter))
    return out


def _leaf(
    path: str,
    op: str,
    specified: Mapping[str, Any],
    compile_filter: FilterCompiler,
) -> Explain:
    matches = compile_filter(specified)

    def explain(doc: Mapping[str, Any]) -> Details | None:
        if matches(doc):
            return None
        value = get_path(doc, path)
        details: Details = {"operatorName": op, "specifiedAs": dict(specified)}
        if value is MISSING and op not in _MISSING_IS_NOT_THE_REASON:
            details["reason"] = "field was missing"
            return details
        if op == "$exists" and not specified[path][op]:
            details["reason"] = "path does exist"
        else:
            details["reason"] = _REASONS.get(op, "expression did not match")
        if value is not MISSING:
            details["consideredValue"] = value
        return details

    return explain


def _opaque(
    op: str,
    specified: Mapping[str, Any],
    compile_filter: FilterCompiler,
) -> Explain:
    matches = compile_filter(specified)

    def explain(doc: Mapping[str, Any]) -> Details | None:
        if matches(doc):
            return None
        return {
            "operatorName": op,
            "specifiedAs": dict(specified),
            "reason": "expression did not match",
        }

    return explain


# --- collection validators -----------------------------------------------------------------

VALIDATION_LEVELS = ("off", "strict", "moderate")
VALIDATION_ACTIONS = ("error", "warn", "errorAndWarn")


class CollectionValidator:
    """A collection's ``validator`` with its ``validationLevel`` and ``validationAction``.

    The validator is any query document; ``$jsonSchema`` clauses give mongod's detailed
    errors, other clauses are matched with ``matching.compile_filter`` and explained briefly.
    """

    def __init__(
        self, validator: Mapping[str, Any], level: str = "strict", action: str = "error"
    ) -> None:
        if not isinstance(validator, Mapping):
            raise MongoError(14, "'validator' must be an object")
        # The create/collMod IDL rejects unknown enum values with BadValue.
        if level not in VALIDATION_LEVELS:
            raise MongoError(
                2, f"Enumeration value '{level}' for field 'validationLevel' is not a valid value."
            )
        if action not in VALIDATION_ACTIONS:
            raise MongoError(
                2,
                f"Enumeration value '{action}' for field 'validationAction' is not a valid value.",
            )
        self.validator = validator
        self.level = level
        self.action = action
        self._clauses = query_clause_checker(validator, compile_json_schema)

    def _details(self, doc: Mapping[str, Any]) -> Details | None:
        return self._clauses(doc)

    def check(
        self, new_doc: Mapping[str, Any], old_doc: Mapping[str, Any] | None
    ) -> Details | None:
        """errInfo details if ``new_doc`` must be rejected (or warned about), else None."""
        if self.level == "off":
            return None
        # Manual "Specify Validation Level": moderate skips updates of documents that did not
        # already satisfy the validator.
        if self.level == "moderate" and old_doc is not None and self._details(old_doc):
            return None
        return self._details(new_doc)

    def error(self, doc_id: Any, details: Details) -> MongoError:
        return MongoError(
            121,
            "Document failed validation",
            extra={"errInfo": {"failingDocumentId": doc_id, "details": details}},
        )

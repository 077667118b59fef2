"""Updates: operator updates, replacements and pipeline updates, and their upserts.

:func:`apply_update` checks an operator update (known operators, no conflicting paths,
every array filter used, ``_id`` unchanged), expands its paths
(:mod:`.update_paths`), applies each operator (:mod:`.update_operators`) to a structural
copy of the document and describes the change (:mod:`.update_descriptions`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .aggregation import transform_document
from .bsonutil import canonical
from .errors import MongoError
from .update_descriptions import ChangeLog, describe, diff_documents
from .update_operators import OPERATORS
from .update_paths import PathContext, clone, expand_path, set_path


@dataclass(slots=True)
class UpdateResult:
    doc: dict[str, Any]
    modified: bool
    description: dict[str, Any] | None


def is_operator_update(update: Mapping[str, Any]) -> bool:
    keys = list(update)
    dollar = [k.startswith("$") for k in keys]
    if any(dollar) and not all(dollar):
        first_plain = keys[dollar.index(False)]
        raise MongoError(
            9,
            f"Unknown modifier: {first_plain}. Expected a valid update modifier "
            "or pipeline-style update specified as an array",
        )
    return bool(keys) and all(dollar)


def validate_update(u: Any) -> None:
    """Parse an update before looking for documents, as mongod does: an unknown or empty
    modifier fails with FailedToParse (9) even when nothing matches."""
    if isinstance(u, Mapping) and is_operator_update(u):
        _plan(u, True)


def validate_replacement(doc: Mapping[str, Any]) -> None:
    for key in doc:
        if key.startswith("$"):
            raise MongoError(
                52,
                f"The dollar ($) prefixed field '{key}' in '{key}' is not "
                "allowed in the context of an update's replacement document. "
                "Consider using an aggregation pipeline with $replaceWith.",
            )


def upsert_seed(query: Mapping[str, Any]) -> dict[str, Any]:
    """The equality fields of the query, as mongod seeds an upsert's new document."""
    seed: dict[str, Any] = {}

    def visit(q: Mapping[str, Any]) -> None:
        for key, value in q.items():
            if key == "$and":
                for clause in value:
                    visit(clause)
                continue
            if key.startswith("$"):
                continue
            if isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
                if "$eq" not in value:
                    continue
                value = value["$eq"]
            set_path(seed, key.split("."), clone(value))

    visit(query)
    if "_id" in seed:
        seed = {"_id": seed["_id"], **{k: v for k, v in seed.items() if k != "_id"}}
    return seed


def _check_conflicts(paths: list[str]) -> None:
    seen: list[str] = []
    for path in paths:
        for other in seen:
            if path == other or path.startswith(other + ".") or other.startswith(path + "."):
                raise MongoError(
                    40,
                    f"Updating the path '{path}' would create a conflict at "
                    f"'{other if len(other) <= len(path) else path}'",
                )
        seen.append(path)


def _plan(update: Mapping[str, Any], upsert_insert: bool) -> list[tuple[str, str, Any]]:
    plan: list[tuple[str, str, Any]] = []
    for name, spec in update.items():
        if name not in OPERATORS:
            raise MongoError(
                9,
                f"Unknown modifier: {name}. Expected a valid update modifier or "
                "pipeline-style update specified as an array",
            )
        if not isinstance(spec, Mapping) or not spec:
            raise MongoError(
                9,
                f"'{name}' is empty. You must specify a field like so: "
                f"{{{name}: {{<field>: ...}}}}",
            )
        if name == "$setOnInsert" and not upsert_insert:
            continue
        for path, value in spec.items():
            plan.append((name, path, value))
    return plan


def apply_update(
    doc: Mapping[str, Any],
    update: Mapping[str, Any] | list[Mapping[str, Any]],
    *,
    array_filters: list[Mapping[str, Any]] | None = None,
    upsert_insert: bool = False,
    matched_query: Mapping[str, Any] | None = None,
) -> UpdateResult:
    if isinstance(update, list):
        return _pipeline_update(doc, update)
    plan = _plan(update, upsert_insert)
    ctx = PathContext(array_filters, matched_query, doc)
    concrete = [(name, p, value) for name, path, value in plan for p in expand_path(doc, path, ctx)]
    targets = [p for _, p, _ in concrete] + [v for n, _, v in concrete if n == "$rename"]
    _check_conflicts(targets)
    unused = set(ctx.filters) - ctx.used
    if unused:
        raise MongoError(
            9, f"The array filter for identifier '{sorted(unused)[0]}' was not used in the update"
        )
    new = clone(dict(doc))
    log = ChangeLog()
    for name, path, value in concrete:
        touches_id = path == "_id" or path.startswith("_id.")
        if touches_id and (not upsert_insert or name not in ("$set", "$setOnInsert")):
            _check_id_unchanged(doc, name, path, value)
        OPERATORS[name](new, path, value, ctx, log)
    if "_id" in doc and canonical(new.get("_id")) != canonical(doc["_id"]):
        raise MongoError(
            66, "Performing an update on the path '_id' would modify the immutable field '_id'"
        )
    modified = canonical(new) != canonical(doc)
    return UpdateResult(new, modified, describe(doc, new, log) if modified else None)


def _check_id_unchanged(doc: Mapping[str, Any], name: str, path: str, value: Any) -> None:
    if (
        name in ("$set", "$setOnInsert")
        and path == "_id"
        and "_id" in doc
        and canonical(value) == canonical(doc["_id"])
    ):
        return
    if "_id" not in doc:
        return
    raise MongoError(
        66, "Performing an update on the path '_id' would modify the immutable field '_id'"
    )


def _pipeline_update(doc: Mapping[str, Any], stages: list[Mapping[str, Any]]) -> UpdateResult:
    new = transform_document(dict(doc), stages)
    if "_id" in doc:
        if "_id" in new and canonical(new["_id"]) != canonical(doc["_id"]):
            raise MongoError(
                66, "Performing an update on the path '_id' would modify the immutable field '_id'"
            )
        new = {"_id": doc["_id"], **{k: v for k, v in new.items() if k != "_id"}}
    modified = canonical(new) != canonical(doc)
    return UpdateResult(new, modified, diff_documents(doc, new) if modified else None)

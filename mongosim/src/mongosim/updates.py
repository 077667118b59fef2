"""Update operators, replacements, pipeline updates and their update descriptions.

Operator updates work on a structural copy of the document. Each operator records the
paths it touched, which become the change event's ``updateDescription`` as mongod's v2
oplog diff reports them: ``$set``/``$inc``/... of a path report that path, array
operators report changed elements (``arr.3``) or ``truncatedArrays``, ``$unset`` reports
``removedFields``; nothing is reported for a value that did not change.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.timestamp import Timestamp

from .aggregation import transform_document
from .bsonutil import MISSING, SortKey, canonical, compare, get_path, is_number, to_python_number
from .errors import MongoError
from .matching import compile_filter
from .sorting import compile_sort

_D128 = create_decimal128_context()


@dataclass(slots=True)
class UpdateResult:
    doc: dict[str, Any]
    modified: bool
    description: dict[str, Any] | None


@dataclass(slots=True)
class _Log:
    set_paths: list[str] = field(default_factory=list)
    array_paths: list[str] = field(default_factory=list)
    unset_paths: list[str] = field(default_factory=list)


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


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
            _set(seed, key.split("."), _clone(value))

    visit(query)
    if "_id" in seed:
        seed = {"_id": seed["_id"], **{k: v for k, v in seed.items() if k != "_id"}}
    return seed


# -- paths -----------------------------------------------------------------------------
def _child(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        return container.get(part, MISSING)
    if isinstance(container, list) and part.isdigit():
        i = int(part)
        return container[i] if i < len(container) else MISSING
    return MISSING


def _set(doc: Any, parts: list[str], value: Any) -> None:
    container = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(container, list):
            if not part.isdigit():
                raise MongoError(
                    28,
                    f"Cannot create field '{part}' in element "
                    f"{{{parts[i - 1] if i else ''}: {container!r}}}",
                )
            index = int(part)
            while len(container) <= index:
                container.append(None)
            if last:
                container[index] = value
                return
            if not isinstance(container[index], dict | list):
                if container[index] is not None:
                    raise MongoError(
                        28,
                        f"Cannot create field '{parts[i + 1]}' in element "
                        f"{{{part}: {container[index]!r}}}",
                    )
                container[index] = {}
            container = container[index]
        elif isinstance(container, dict):
            if last:
                container[part] = value
                return
            nxt = container.get(part, MISSING)
            if nxt is MISSING:
                nxt = container[part] = {}
            elif not isinstance(nxt, dict | list):
                raise MongoError(
                    28, f"Cannot create field '{parts[i + 1]}' in element {{{part}: {nxt!r}}}"
                )
            container = nxt
        else:
            raise MongoError(28, f"Cannot create field '{part}' in element {container!r}")


def _unset(doc: Any, parts: list[str]) -> bool:
    container = doc
    for part in parts[:-1]:
        container = _child(container, part)
        if container is MISSING:
            return False
    last = parts[-1]
    if isinstance(container, dict) and last in container:
        del container[last]
        return True
    if isinstance(container, list) and last.isdigit() and int(last) < len(container):
        container[int(last)] = None  # mongod nulls array elements rather than removing them
        return True
    return False


def _expand(doc: Any, path: str, ctx: _Ctx) -> list[str]:
    """Concrete paths for a path that may hold $, $[] or $[id] parts."""
    parts = path.split(".")
    if not any(p.startswith("$") for p in parts):
        return [path]
    results: list[list[str]] = [[]]
    for part in parts:
        if not part.startswith("$"):
            results = [[*r, part] for r in results]
            continue
        expanded: list[list[str]] = []
        for prefix in results:
            array = get_path(doc, ".".join(prefix)) if prefix else doc
            if not isinstance(array, list):
                raise MongoError(
                    2,
                    f"The path '{'.'.join(prefix)}' must exist in the document "
                    "in order to apply array updates.",
                )
            for i in ctx.positions(part, ".".join(prefix), array):
                expanded.append([*prefix, str(i)])
        results = expanded
    return [".".join(r) for r in results]


class _Ctx:
    def __init__(
        self,
        array_filters: list[Mapping[str, Any]] | None,
        matched_query: Mapping[str, Any] | None,
        doc: Mapping[str, Any],
    ) -> None:
        self.filters: dict[str, Callable[[Mapping[str, Any]], bool]] = {}
        for f in array_filters or []:
            ident = next(iter(f)).split(".", 1)[0]
            self.filters[ident] = compile_filter(f)
        self.query = matched_query or {}
        self.doc = doc
        self.used: set[str] = set()

    def positions(self, part: str, prefix: str, array: list[Any]) -> list[int]:
        if part == "$[]":
            return list(range(len(array)))
        if part == "$":
            return [self._first_match(prefix, array)]
        ident = part[2:-1]
        matcher = self.filters.get(ident)
        if matcher is None:
            raise MongoError(
                2, f"No array filter found for identifier '{ident}' in path '{prefix}.{part}'"
            )
        self.used.add(ident)
        return [i for i, e in enumerate(array) if matcher({ident: e})]

    def _first_match(self, prefix: str, array: list[Any]) -> int:
        conditions = {
            k[len(prefix) + 1 :] or "v": v
            for k, v in self.query.items()
            if k == prefix or k.startswith(prefix + ".")
        }
        if not conditions:
            raise MongoError(
                2, "The positional operator did not find the match needed from the query."
            )
        wrapped = {("e" if k == "v" else f"e.{k}"): v for k, v in conditions.items()}
        matcher = compile_filter(wrapped)
        for i, element in enumerate(array):
            # A one-element array: conditions on the array itself ($elemMatch, $gte...)
            # then apply to this element exactly as they did to the array.
            if matcher({"e": [element]}):
                return i
        raise MongoError(2, "The positional operator did not find the match needed from the query.")


# -- arithmetic ------------------------------------------------------------------------
def _numeric(op: str, current: Any, operand: Any, path: str, doc_id: Any) -> Any:
    if not is_number(operand):
        raise MongoError(
            14,
            f"Cannot {'increment' if op == '$inc' else 'multiply'} with "
            f"non-numeric argument: {{{path}: {operand!r}}}",
        )
    if current is MISSING:
        current = 0 if op == "$inc" else _zero_like(operand)
        if op == "$inc":
            return operand
    if not is_number(current):
        raise MongoError(
            14,
            f"Cannot apply {op} to a value of non-numeric type. {{_id: "
            f"{doc_id!r}}} has the field '{path.split('.')[-1]}' of "
            f"non-numeric type {type(current).__name__}",
        )
    return _combine(current, operand, op == "$inc")


def _zero_like(operand: Any) -> Any:
    if isinstance(operand, Decimal128):
        return Decimal128("0")
    if isinstance(operand, float):
        return 0.0
    return Int64(0) if isinstance(operand, Int64) else 0


def _combine(a: Any, b: Any, add: bool) -> Any:
    if isinstance(a, Decimal128) or isinstance(b, Decimal128):
        x, y = Decimal(to_python_number(a)), Decimal(to_python_number(b))
        return Decimal128(_D128.add(x, y) if add else _D128.multiply(x, y))
    if isinstance(a, float) or isinstance(b, float):
        return float(a) + float(b) if add else float(a) * float(b)
    result = int(a) + int(b) if add else int(a) * int(b)
    if isinstance(a, Int64) or isinstance(b, Int64) or not -(2**31) <= result < 2**31:
        if not -(2**63) <= result < 2**63:
            raise MongoError(
                2, "Failed to apply $inc operations to current value: integer overflow"
            )
        return Int64(result)
    return result


# -- operators -------------------------------------------------------------------------
OpFn = Callable[[dict[str, Any], str, Any, "_Ctx", _Log], None]


def _op_set(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    _set(doc, path.split("."), _clone(value))
    log.set_paths.append(path)


def _op_unset(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    if _unset(doc, path.split(".")):
        log.unset_paths.append(path)


def _op_arith(name: str) -> OpFn:
    def op(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
        current = get_path(doc, path)
        _set(doc, path.split("."), _numeric(name, current, value, path, doc.get("_id")))
        log.set_paths.append(path)

    return op


def _op_minmax(sign: int) -> OpFn:
    def op(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
        current = get_path(doc, path)
        if current is MISSING or compare(value, current) * sign > 0:
            _set(doc, path.split("."), _clone(value))
            log.set_paths.append(path)

    return op


def _op_current_date(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    now = _dt.datetime.now(_dt.UTC)
    if isinstance(value, Mapping) and value.get("$type") == "timestamp":
        stamp: Any = Timestamp(int(now.timestamp()), 1)
    else:
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
    _set(doc, path.split("."), stamp)
    log.set_paths.append(path)


def _op_rename(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    if not isinstance(value, str):
        raise MongoError(2, f"The 'to' field for $rename must be a string: {path}: {value!r}")
    current = get_path(doc, path)
    if current is MISSING:
        return
    _unset(doc, path.split("."))
    log.unset_paths.append(path)
    _set(doc, value.split("."), current)
    log.set_paths.append(value)


def _array_at(doc: dict[str, Any], path: str, op: str) -> list[Any] | None:
    current = get_path(doc, path)
    if current is MISSING:
        return None
    if not isinstance(current, list):
        raise MongoError(
            2,
            f"The field '{path}' must be an array but is of type "
            f"{type(current).__name__} in document {{_id: {doc.get('_id')!r}}}",
        )
    return current


def _op_push(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    array = list(_array_at(doc, path, "$push") or [])
    if isinstance(value, Mapping) and "$each" in value:
        items = [_clone(v) for v in value["$each"]]
        position = value.get("$position")
        if position is None:
            array.extend(items)
        else:
            pos = int(position)
            pos = max(0, len(array) + pos) if pos < 0 else pos
            array[pos:pos] = items
        if "$sort" in value:
            array = _sorted_array(array, value["$sort"])
        if "$slice" in value:
            n = int(value["$slice"])
            array = array[:n] if n >= 0 else array[n:] if n else []
    else:
        array.append(_clone(value))
    _set(doc, path.split("."), array)
    log.array_paths.append(path)


def _sorted_array(array: list[Any], spec: Any) -> list[Any]:
    if isinstance(spec, Mapping):
        return sorted(array, key=compile_sort(spec))
    return sorted(array, key=SortKey, reverse=spec == -1)


def _op_add_to_set(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    array = list(_array_at(doc, path, "$addToSet") or [])
    items = value["$each"] if isinstance(value, Mapping) and "$each" in value else [value]
    seen = {canonical(v) for v in array}
    for item in items:
        key = canonical(item)
        if key not in seen:
            seen.add(key)
            array.append(_clone(item))
    _set(doc, path.split("."), array)
    log.array_paths.append(path)


def _op_pop(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    array = _array_at(doc, path, "$pop")
    if not array:
        return
    _set(doc, path.split("."), array[1:] if value == -1 else array[:-1])
    log.array_paths.append(path)


def _pull_matcher(cond: Any) -> Callable[[Any], bool]:
    if isinstance(cond, Mapping) and cond:
        if all(k.startswith("$") for k in cond):
            wrapped = compile_filter({"v": cond})
            return lambda e: wrapped({"v": e})
        query = compile_filter(cond)
        return lambda e: isinstance(e, Mapping) and query(e)
    key = canonical(cond)
    return lambda e: canonical(e) == key


def _op_pull(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    array = _array_at(doc, path, "$pull")
    if array is None:
        return
    matcher = _pull_matcher(value)
    _set(doc, path.split("."), [e for e in array if not matcher(e)])
    log.array_paths.append(path)


def _op_pull_all(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    array = _array_at(doc, path, "$pullAll")
    if array is None:
        return
    drop = {canonical(v) for v in value}
    _set(doc, path.split("."), [e for e in array if canonical(e) not in drop])
    log.array_paths.append(path)


def _op_bit(doc: dict[str, Any], path: str, value: Any, ctx: _Ctx, log: _Log) -> None:
    current = get_path(doc, path)
    result = 0 if current is MISSING else int(current)
    for name, operand in value.items():
        result = {"and": result & operand, "or": result | operand, "xor": result ^ operand}[name]
    _set(doc, path.split("."), Int64(result) if isinstance(current, Int64) else result)
    log.set_paths.append(path)


_OPERATORS: dict[str, OpFn] = {
    "$set": _op_set,
    "$unset": _op_unset,
    "$inc": _op_arith("$inc"),
    "$mul": _op_arith("$mul"),
    "$min": _op_minmax(-1),
    "$max": _op_minmax(1),
    "$currentDate": _op_current_date,
    "$rename": _op_rename,
    "$push": _op_push,
    "$addToSet": _op_add_to_set,
    "$pop": _op_pop,
    "$pull": _op_pull,
    "$pullAll": _op_pull_all,
    "$bit": _op_bit,
    "$setOnInsert": _op_set,
}


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
        if name not in _OPERATORS:
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


def _description(before: Mapping[str, Any], after: Mapping[str, Any], log: _Log) -> dict[str, Any]:
    updated: dict[str, Any] = {}
    truncated: list[dict[str, Any]] = []
    for path in log.set_paths:
        new = get_path(after, path)
        old = get_path(before, path)
        if new is not MISSING and (old is MISSING or canonical(old) != canonical(new)):
            updated[path] = new
    for path in log.array_paths:
        _array_diff(path, get_path(before, path), get_path(after, path), updated, truncated)
    removed = [
        p
        for p in log.unset_paths
        if get_path(before, p) is not MISSING and get_path(after, p) is MISSING
    ]
    # A path under another reported path is covered by it.
    reported = list(updated)
    for path in reported:
        if any(path.startswith(o + ".") for o in reported if o != path):
            del updated[path]
    return {"updatedFields": updated, "removedFields": removed, "truncatedArrays": truncated}


def _array_diff(
    path: str, old: Any, new: Any, updated: dict[str, Any], truncated: list[dict[str, Any]]
) -> None:
    if not isinstance(old, list) or not isinstance(new, list):
        if new is not MISSING:
            updated[path] = new
        return
    for i, value in enumerate(new):
        if i >= len(old) or canonical(old[i]) != canonical(value):
            updated[f"{path}.{i}"] = value
    if len(new) < len(old):
        truncated.append({"field": path, "newSize": len(new)})


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
    ctx = _Ctx(array_filters, matched_query, doc)
    concrete = [(name, p, value) for name, path, value in plan for p in _expand(doc, path, ctx)]
    targets = [p for _, p, _ in concrete] + [v for n, _, v in concrete if n == "$rename"]
    _check_conflicts(targets)
    unused = set(ctx.filters) - ctx.used
    if unused:
        raise MongoError(
            9, f"The array filter for identifier '{sorted(unused)[0]}' was not used in the update"
        )
    new = _clone(dict(doc))
    log = _Log()
    for name, path, value in concrete:
        touches_id = path == "_id" or path.startswith("_id.")
        if touches_id and (not upsert_insert or name not in ("$set", "$setOnInsert")):
            _check_id_unchanged(doc, name, path, value)
        _OPERATORS[name](new, path, value, ctx, log)
    if "_id" in doc and canonical(new.get("_id")) != canonical(doc["_id"]):
        raise MongoError(
            66, "Performing an update on the path '_id' would modify the immutable field '_id'"
        )
    modified = canonical(new) != canonical(doc)
    return UpdateResult(new, modified, _description(doc, new, log) if modified else None)


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


def diff_documents(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> dict[str, Any]:
    """The update description of a whole-document change (pipeline updates)."""
    updated: dict[str, Any] = {}
    removed: list[str] = []
    truncated: list[dict[str, Any]] = []
    for key, new in after.items():
        path = f"{prefix}{key}"
        old = before.get(key, MISSING)
        if old is not MISSING and canonical(old) == canonical(new):
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            sub = diff_documents(old, new, path + ".")
            updated.update(sub["updatedFields"])
            removed.extend(sub["removedFields"])
            truncated.extend(sub["truncatedArrays"])
        elif isinstance(old, list) and isinstance(new, list):
            _array_diff(path, old, new, updated, truncated)
        else:
            updated[path] = new
    removed.extend(f"{prefix}{k}" for k in before if k not in after)
    return {"updatedFields": updated, "removedFields": removed, "truncatedArrays": truncated}

"""The update operators: ``$set``, ``$inc``, ``$push``, ``$pull``, ``$bit`` and the rest.

Each applies one concrete path of an update to a structural copy of the document and
records what it touched in the :class:`.update_descriptions.ChangeLog` (manual: "Update
Operators"; numeric promotion and overflow as mongod's ``$inc``/``$mul``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64
from bson.timestamp import Timestamp

from .bsonutil import MISSING, SortKey, canonical, compare, get_path, is_number, to_python_number
from .errors import MongoError
from .matching import compile_filter
from .sorting import compile_sort
from .update_descriptions import ChangeLog
from .update_paths import PathContext, clone, set_path, unset_path

_D128 = create_decimal128_context()


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
OpFn = Callable[[dict[str, Any], str, Any, "PathContext", ChangeLog], None]


def _op_set(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    set_path(doc, path.split("."), clone(value))
    log.set_paths.append(path)


def _op_unset(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    if unset_path(doc, path.split(".")):
        log.unset_paths.append(path)


def _op_arith(name: str) -> OpFn:
    def op(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
        current = get_path(doc, path)
        set_path(doc, path.split("."), _numeric(name, current, value, path, doc.get("_id")))
        log.set_paths.append(path)

    return op


def _op_minmax(sign: int) -> OpFn:
    def op(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
        current = get_path(doc, path)
        if current is MISSING or compare(value, current) * sign > 0:
            set_path(doc, path.split("."), clone(value))
            log.set_paths.append(path)

    return op


def _op_current_date(
    doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog
) -> None:
    now = _dt.datetime.now(_dt.UTC)
    if isinstance(value, Mapping) and value.get("$type") == "timestamp":
        stamp: Any = Timestamp(int(now.timestamp()), 1)
    else:
        stamp = now.replace(microsecond=now.microsecond // 1000 * 1000)
    set_path(doc, path.split("."), stamp)
    log.set_paths.append(path)


def _op_rename(
    doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog
) -> None:
    if not isinstance(value, str):
        raise MongoError(2, f"The 'to' field for $rename must be a string: {path}: {value!r}")
    current = get_path(doc, path)
    if current is MISSING:
        return
    unset_path(doc, path.split("."))
    log.unset_paths.append(path)
    set_path(doc, value.split("."), current)
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


def _op_push(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    array = list(_array_at(doc, path, "$push") or [])
    if isinstance(value, Mapping) and "$each" in value:
        items = [clone(v) for v in value["$each"]]
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
        array.append(clone(value))
    set_path(doc, path.split("."), array)
    log.array_paths.append(path)


def _sorted_array(array: list[Any], spec: Any) -> list[Any]:
    if isinstance(spec, Mapping):
        return sorted(array, key=compile_sort(spec))
    return sorted(array, key=SortKey, reverse=spec == -1)


def _op_add_to_set(
    doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog
) -> None:
    array = list(_array_at(doc, path, "$addToSet") or [])
    items = value["$each"] if isinstance(value, Mapping) and "$each" in value else [value]
    seen = {canonical(v) for v in array}
    for item in items:
        key = canonical(item)
        if key not in seen:
            seen.add(key)
            array.append(clone(item))
    set_path(doc, path.split("."), array)
    log.array_paths.append(path)


def _op_pop(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    array = _array_at(doc, path, "$pop")
    if not array:
        return
    set_path(doc, path.split("."), array[1:] if value == -1 else array[:-1])
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


def _op_pull(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    array = _array_at(doc, path, "$pull")
    if array is None:
        return
    matcher = _pull_matcher(value)
    set_path(doc, path.split("."), [e for e in array if not matcher(e)])
    log.array_paths.append(path)


def _op_pull_all(
    doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog
) -> None:
    array = _array_at(doc, path, "$pullAll")
    if array is None:
        return
    drop = {canonical(v) for v in value}
    set_path(doc, path.split("."), [e for e in array if canonical(e) not in drop])
    log.array_paths.append(path)


def _op_bit(doc: dict[str, Any], path: str, value: Any, ctx: PathContext, log: ChangeLog) -> None:
    current = get_path(doc, path)
    result = 0 if current is MISSING else int(current)
    for name, operand in value.items():
        result = {"and": result & operand, "or": result | operand, "xor": result ^ operand}[name]
    set_path(doc, path.split("."), Int64(result) if isinstance(current, Int64) else result)
    log.set_paths.append(path)


OPERATORS: dict[str, OpFn] = {
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

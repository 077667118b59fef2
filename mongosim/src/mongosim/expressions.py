"""Aggregation expressions (manual: "Aggregation Operators").

``evaluate(expr, doc, variables)`` returns ``MISSING`` for a missing field, so callers can
omit it, as ``$project``/``$addFields`` do. Arithmetic promotes like mongod: int32 → int64
on overflow, anything with a double → double, anything with a decimal → Decimal128.
"""

from __future__ import annotations

import datetime as _dt
import math
import random
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any

from bson.decimal128 import Decimal128, create_decimal128_context
from bson.int64 import Int64

from .accumulators import fold
from .bsonutil import MISSING, bson_type_name, canonical, compare, is_number, to_python_number
from .errors import MongoError
from .expr_dates import date_operators
from .hashing import hash64

_D128 = create_decimal128_context()
Vars = Mapping[str, Any]
OpFn = Callable[[Any, Mapping[str, Any], Vars], Any]


def _path(doc: Any, parts: list[str]) -> Any:
    for i, part in enumerate(parts):
        if isinstance(doc, list):
            # "$arr.x" over an array of documents gives the array of x's.
            rest = parts[i:]
            out = [_path(e, rest) for e in doc if isinstance(e, Mapping | list)]
            return [v for v in out if v is not MISSING]
        if not isinstance(doc, Mapping):
            return MISSING
        doc = doc.get(part, MISSING)
        if doc is MISSING:
            return MISSING
    return doc


# A command's ``let`` variables (find, aggregate, update, delete, findAndModify: 5.0+),
# set by the engine for the command's duration; code that evaluates later (a cursor's
# filter, a pipeline) captures them when it is compiled.
COMMAND_VARIABLES: ContextVar[Mapping[str, Any]] = ContextVar(
    "command_variables", default=MappingProxyType({})
)


def command_variables(let: Any) -> dict[str, Any]:
    """Evaluate a command's ``let``: constant expressions, which may use $$NOW."""
    if let is None:
        return {}
    if not isinstance(let, Mapping):
        raise MongoError(14, "BSON field 'let' is the wrong type, expected type 'object'")
    now = {"NOW": _dt.datetime.now(_dt.UTC)}
    return {name: evaluate(value, {}, now) for name, value in let.items()}


def field_path(expr: str, doc: Mapping[str, Any], variables: Vars) -> Any:
    if expr.startswith("$$"):
        name, _, rest = expr[2:].partition(".")
        if name in ("ROOT", "CURRENT"):
            base: Any = variables.get("CURRENT", doc) if name == "CURRENT" else doc
        elif name == "NOW":
            base = variables.get("NOW") or _dt.datetime.now(_dt.UTC)
        elif name == "REMOVE":
            return MISSING
        elif name in variables:
            base = variables[name]
        elif name in COMMAND_VARIABLES.get():
            base = COMMAND_VARIABLES.get()[name]
        else:
            raise MongoError(17276, f"Use of undefined variable: {name}")
        return _path(base, rest.split(".")) if rest else base
    return _path(doc, expr[1:].split("."))


def evaluate(expr: Any, doc: Mapping[str, Any], variables: Vars | None = None) -> Any:
    variables = variables or {}
    if isinstance(expr, str):
        return field_path(expr, doc, variables) if expr.startswith("$") else expr
    if isinstance(expr, list):
        return [_null_if_missing(evaluate(e, doc, variables)) for e in expr]
    if isinstance(expr, Mapping):
        if len(expr) == 1:
            ((name, arg),) = expr.items()
            if name.startswith("$"):
                fn = OPERATORS.get(name)
                if fn is None:
                    raise MongoError(168, f"Unrecognized expression '{name}'")
                return fn(arg, doc, variables)
        out = {}
        for key, sub in expr.items():
            value = evaluate(sub, doc, variables)
            if value is not MISSING:
                out[key] = value
        return out
    return expr


def _null_if_missing(value: Any) -> Any:
    return None if value is MISSING else value


def _args(arg: Any, doc: Mapping[str, Any], variables: Vars) -> list[Any]:
    items = arg if isinstance(arg, list) else [arg]
    return [_null_if_missing(evaluate(a, doc, variables)) for a in items]


def truthy(value: Any) -> bool:
    if value is None or value is MISSING or value is False:
        return False
    if is_number(value):
        return to_python_number(value) != 0
    return True


# -- arithmetic ------------------------------------------------------------------------
def _num(value: Any) -> int | float | Decimal:
    return to_python_number(value)


def _typed(result: Any, operands: list[Any]) -> Any:
    if any(isinstance(o, Decimal128) for o in operands):
        return Decimal128(_D128.create_decimal(result))
    if any(isinstance(o, float) for o in operands):
        return float(result)
    value = int(result)
    if any(isinstance(o, Int64) for o in operands) or not -(2**31) <= value < 2**31:
        return Int64(value) if -(2**63) <= value < 2**63 else float(value)
    return value


def _arith(op: Callable[[Any, Any], Any]) -> OpFn:
    def fn(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        values = _args(arg, doc, v)
        if any(x is None for x in values):
            return None
        if any(isinstance(x, _dt.datetime) for x in values):
            return _date_arith(op, values)
        for x in values:
            if not is_number(x):
                raise MongoError(14, f"only numeric types are allowed, got {x!r}")
        if any(isinstance(x, Decimal128) for x in values):
            acc: Any = Decimal(_num(values[0]))
            for x in values[1:]:
                acc = op(acc, Decimal(_num(x)))
        else:
            acc = _num(values[0])
            for x in values[1:]:
                acc = op(acc, _num(x))
        return _typed(acc, values)

    return fn


def _date_arith(op: Callable[[Any, Any], Any], values: list[Any]) -> Any:
    a, b = values[0], values[1]
    if isinstance(a, _dt.datetime) and isinstance(b, _dt.datetime):
        return Int64(int((a - b).total_seconds() * 1000))
    date, ms = (a, b) if isinstance(a, _dt.datetime) else (b, a)
    delta = _dt.timedelta(milliseconds=float(_num(ms)))
    return date + delta if op(1, 1) == 2 else date - delta


def _divide(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    a, b = _args(arg, doc, v)
    if a is None or b is None:
        return None
    if _num(b) == 0:
        raise MongoError(2, "can't $divide by zero")
    if isinstance(a, Decimal128) or isinstance(b, Decimal128):
        return Decimal128(_D128.divide(Decimal(_num(a)), Decimal(_num(b))))
    return float(_num(a)) / float(_num(b))


def _mod(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    """ExpressionMod: fmod when a double is involved (an integral double divisor keeps
    integer arithmetic), else exact integer remainder with the dividend's sign (C++ ``%``);
    long if either side is a long. Integers never pass through a double (a hashed key
    has more bits than a double's mantissa)."""
    a, b = _args(arg, doc, v)
    if a is None or b is None:
        return None
    for x in (a, b):
        if not is_number(x):
            raise MongoError(16611, f"$mod only supports numeric types, not {bson_type_name(x)}")
    if _num(b) == 0:
        raise MongoError(16610, "can't $mod by zero")
    integral_b = not isinstance(b, float) or float(b).is_integer()
    if isinstance(a, Decimal128 | float) or isinstance(b, Decimal128) or not integral_b:
        return _typed(math.fmod(_num(a), _num(b)), [a, b])
    x, y = int(_num(a)), int(_num(b))
    result = abs(x) % abs(y) * (1 if x >= 0 else -1)
    return Int64(result) if isinstance(a, Int64) or isinstance(b, Int64) else result


def _abs(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    """ExpressionAbs: exact for int and long (int32 min becomes a long); long min fails."""
    (value,) = _args(arg, doc, v)[:1]
    if value is None:
        return None
    if not is_number(value):
        raise MongoError(28765, f"$abs only supports numeric types, not {bson_type_name(value)}")
    if isinstance(value, float):
        return abs(value)
    if isinstance(value, Decimal128):
        return Decimal128(abs(value.to_decimal()))
    if value == -(2**63):
        raise MongoError(28680, "can't take $abs of long long min")
    return Int64(abs(value)) if isinstance(value, Int64) else _typed(abs(value), [value])


def _rounder(mode: str) -> OpFn:
    def fn(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        values = _args(arg, doc, v)
        value, place = values[0], int(values[1]) if len(values) > 1 and values[1] is not None else 0
        if value is None:
            return None
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return value
        exp = Decimal(1).scaleb(-place)
        dec = Decimal(str(value)) if isinstance(value, float) else Decimal(_num(value))
        rounding = ROUND_HALF_EVEN if mode == "round" else "ROUND_DOWN"
        result = dec.quantize(exp, rounding=rounding) if place >= -20 else Decimal(0)
        if isinstance(value, Decimal128):
            return Decimal128(result)
        if isinstance(value, float):
            return float(result)
        return _typed(result, [value])

    return fn


def _unary_math(fn: Callable[[float], float], keep_int: bool = False) -> OpFn:
    def op(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        (value,) = _args(arg, doc, v)[:1]
        if value is None:
            return None
        result = fn(float(_num(value)))
        if keep_int and not isinstance(value, float | Decimal128):
            return _typed(result, [value])
        if isinstance(value, Decimal128):
            return Decimal128(str(result))
        return result

    return op


# -- comparison, logic, conditionals -------------------------------------------------------
def _cmp_op(test: Callable[[int], bool]) -> OpFn:
    def fn(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        a, b = _args(arg, doc, v)
        return test(compare(a, b))

    return fn


def _cond(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    if isinstance(arg, Mapping):
        branch = arg["then"] if truthy(evaluate(arg["if"], doc, v)) else arg["else"]
    else:
        branch = arg[1] if truthy(evaluate(arg[0], doc, v)) else arg[2]
    return evaluate(branch, doc, v)


def _if_null(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    for expr in arg:
        value = evaluate(expr, doc, v)
        if value is not None and value is not MISSING:
            return value
    return None


def _switch(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    for branch in arg["branches"]:
        if truthy(evaluate(branch["case"], doc, v)):
            return evaluate(branch["then"], doc, v)
    if "default" not in arg:
        raise MongoError(
            40066,
            "$switch could not find a matching branch for an input, and no default was specified.",
        )
    return evaluate(arg["default"], doc, v)


def _let(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    scope = dict(v)
    for name, expr in arg.get("vars", {}).items():
        scope[name] = evaluate(expr, doc, v)
    return evaluate(arg["in"], doc, scope)


# -- arrays ------------------------------------------------------------------------------
def _filter(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    items = evaluate(arg["input"], doc, v)
    if items is None or items is MISSING:
        return None
    name = arg.get("as", "this")
    return [e for e in items if truthy(evaluate(arg["cond"], doc, {**v, name: e}))]


def _map(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    items = evaluate(arg["input"], doc, v)
    if items is None or items is MISSING:
        return None
    name = arg.get("as", "this")
    return [_null_if_missing(evaluate(arg["in"], doc, {**v, name: e})) for e in items]


def _reduce(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    items = evaluate(arg["input"], doc, v)
    if items is None or items is MISSING:
        return None
    acc = evaluate(arg["initialValue"], doc, v)
    for e in items:
        acc = evaluate(arg["in"], doc, {**v, "this": e, "value": acc})
    return acc


def _array_elem_at(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    array, index = _args(arg, doc, v)
    if array is None or index is None:
        return None
    i = int(index)
    return array[i] if -len(array) <= i < len(array) else MISSING


def _accumulate_list(kind: str) -> OpFn:
    def fn(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        values = _args(arg, doc, v)
        if len(values) == 1 and isinstance(values[0], list):
            values = values[0]
        return fold(kind, values)

    return fn


def _size(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    (value,) = _args(arg, doc, v)[:1]
    if not isinstance(value, list):
        raise MongoError(
            17124, f"The argument to $size must be an array. Type of input: {type(value).__name__}"
        )
    return len(value)


def _in(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    needle, hay = _args(arg, doc, v)
    if not isinstance(hay, list):
        raise MongoError(40081, "$in requires an array as a second argument")
    key = canonical(needle)
    return any(canonical(e) == key for e in hay)


def _concat_arrays(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    arrays = _args(arg, doc, v)
    if any(a is None for a in arrays):
        return None
    return [e for a in arrays for e in a]


# -- strings, types, objects ---------------------------------------------------------------
def _concat(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    values = _args(arg, doc, v)
    if any(x is None for x in values):
        return None
    return "".join(values)


def _substr(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    s, start, length = _args(arg, doc, v)
    s = "" if s is None else str(s)
    start = int(start)
    return s[start:] if int(length) < 0 else s[start : start + int(length)]


def _to_string(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return str(value)


def _converter(fn: Callable[[Any], Any]) -> OpFn:
    def op(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
        (value,) = _args(arg, doc, v)[:1]
        return None if value is None else fn(value)

    return op


def _pow(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    base, exponent = _args(arg, doc, v)
    if base is None or exponent is None:
        return None
    return _typed(float(_num(base)) ** float(_num(exponent)), [base, exponent])


def _split(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    text, separator = _args(arg, doc, v)
    return None if text is None else str(text).split(str(separator))


def _merge_objects(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    out: dict[str, Any] = {}
    for value in _args(arg, doc, v):
        if isinstance(value, Mapping):
            out.update(value)
    return out


def _type(arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    value = evaluate(arg[0] if isinstance(arg, list) else arg, doc, v)
    return "missing" if value is MISSING else bson_type_name(value)


def _build_operators() -> dict[str, OpFn]:
    ops: dict[str, OpFn] = {
        "$literal": lambda a, d, v: a,
        "$rand": lambda a, d, v: random.random(),
        "$add": _arith(lambda a, b: a + b),
        "$subtract": _arith(lambda a, b: a - b),
        "$multiply": _arith(lambda a, b: a * b),
        "$divide": _divide,
        "$mod": _mod,
        "$round": _rounder("round"),
        "$trunc": _rounder("trunc"),
        "$abs": _abs,
        "$ceil": _unary_math(math.ceil, keep_int=True),
        "$floor": _unary_math(math.floor, keep_int=True),
        "$sqrt": _unary_math(math.sqrt),
        "$exp": _unary_math(math.exp),
        "$ln": _unary_math(math.log),
        "$log10": _unary_math(math.log10),
        "$pow": _pow,
        "$eq": _cmp_op(lambda c: c == 0),
        "$ne": _cmp_op(lambda c: c != 0),
        "$gt": _cmp_op(lambda c: c > 0),
        "$gte": _cmp_op(lambda c: c >= 0),
        "$lt": _cmp_op(lambda c: c < 0),
        "$lte": _cmp_op(lambda c: c <= 0),
        "$cmp": lambda a, d, v: compare(*_args(a, d, v)),
        "$and": lambda a, d, v: all(truthy(evaluate(e, d, v)) for e in a),
        "$or": lambda a, d, v: any(truthy(evaluate(e, d, v)) for e in a),
        "$not": lambda a, d, v: not truthy(_args(a, d, v)[0]),
        "$cond": _cond,
        "$ifNull": _if_null,
        "$switch": _switch,
        "$let": _let,
        "$filter": _filter,
        "$map": _map,
        "$reduce": _reduce,
        "$size": _size,
        "$in": _in,
        "$arrayElemAt": _array_elem_at,
        "$concatArrays": _concat_arrays,
        "$first": lambda a, d, v: (lambda x: x[0] if x else MISSING)(_args(a, d, v)[0]),
        "$last": lambda a, d, v: (lambda x: x[-1] if x else MISSING)(_args(a, d, v)[0]),
        "$isArray": lambda a, d, v: isinstance(_args(a, d, v)[0], list),
        "$reverseArray": _converter(lambda x: list(reversed(x))),
        "$sum": _accumulate_list("$sum"),
        "$avg": _accumulate_list("$avg"),
        "$min": _accumulate_list("$min"),
        "$max": _accumulate_list("$max"),
        "$concat": _concat,
        "$substr": _substr,
        "$substrCP": _substr,
        "$substrBytes": _substr,
        "$toLower": _converter(lambda s: str(s).lower()),
        "$toUpper": _converter(lambda s: str(s).upper()),
        "$strLenCP": _converter(len),
        "$trim": _converter(lambda s: str(s).strip()),
        "$split": _split,
        "$toString": lambda a, d, v: _to_string(_args(a, d, v)[0]),
        "$toInt": _converter(lambda x: int(_num(x)) if is_number(x) else int(x)),
        "$toLong": _converter(lambda x: Int64(int(_num(x)) if is_number(x) else int(x))),
        "$toDouble": _converter(lambda x: float(_num(x)) if is_number(x) else float(x)),
        "$toDecimal": _converter(lambda x: Decimal128(str(_num(x)) if is_number(x) else str(x))),
        "$toBool": _converter(truthy),
        "$isNumber": lambda a, d, v: is_number(evaluate(a[0] if isinstance(a, list) else a, d, v)),
        "$type": _type,
        "$toHashedIndexKey": lambda a, d, v: hash64(evaluate(a, d, v)),
        "$mergeObjects": _merge_objects,
        "$objectToArray": _converter(lambda o: [{"k": k, "v": x} for k, x in o.items()]),
        "$arrayToObject": _converter(
            lambda arr: {
                (e["k"] if isinstance(e, Mapping) else e[0]): (
                    e["v"] if isinstance(e, Mapping) else e[1]
                )
                for e in arr
            }
        ),
        "$getField": _get_field,
        "$setField": _set_field,
        "$unsetField": lambda a, d, v: _set_field({**a, "value": "$$REMOVE"}, d, v),
    }
    ops.update(date_operators(evaluate))
    return ops


def _field_name(arg: Mapping[str, Any], doc: Mapping[str, Any], variables: Vars, op: str) -> str:
    """The ``field`` of $getField/$setField: a string constant, or an expression ($literal
    for a name with '$' or '.') that evaluates to one (expression_field.cpp)."""
    field = arg.get("field")
    if not isinstance(field, str):
        field = evaluate(field, doc, variables)
    if not isinstance(field, str):
        raise MongoError(4161107, f"{op} requires 'field' to evaluate to type String")
    return field


def _get_field(arg: Any, doc: Mapping[str, Any], variables: Vars) -> Any:
    if not isinstance(arg, Mapping):
        arg = {"field": arg}
    source = evaluate(arg.get("input", "$$CURRENT"), doc, variables)
    if not isinstance(source, Mapping):
        return MISSING
    return source.get(_field_name(arg, doc, variables, "$getField"), MISSING)


def _set_field(arg: Any, doc: Mapping[str, Any], variables: Vars) -> Any:
    """$setField (5.0): a copy of ``input`` with one field, taken literally (a name may
    contain '.' or start with '$'), set to ``value``, or removed by $$REMOVE."""
    if not isinstance(arg, Mapping) or not {"field", "input", "value"} <= set(arg):
        raise MongoError(4161102, "$setField requires 'field', 'input' and 'value'")
    name = _field_name(arg, doc, variables, "$setField")
    source = evaluate(arg["input"], doc, variables)
    if source is None or source is MISSING:
        return None
    if not isinstance(source, Mapping):
        raise MongoError(4161105, "$setField requires 'input' to evaluate to type Object")
    value = evaluate(arg["value"], doc, variables)
    out = {k: x for k, x in source.items() if k != name}
    if value is not MISSING:
        out = dict(source)
        out[name] = value
    return out


OPERATORS: dict[str, OpFn] = {}
OPERATORS.update(_build_operators())

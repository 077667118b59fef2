"""Field operators of the query language ($eq, $gt, $in, $regex, $elemMatch, ...).

Each operator compiles to a ``ValuesPred``: a predicate over the leaf values a path
resolves to (see ``matching._walk``). Operators that mongod applies to array elements
expand leaf arrays themselves; $size, $elemMatch and $exists look at the values whole.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Protocol

from bson.code import Code
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex

from .bsonutil import MISSING, bson_type_name, canonical, compare, is_nan, is_number, type_rank
from .errors import MongoError

ValuePred = Callable[[Any], bool]
ValuesPred = Callable[[Sequence[Any]], bool]

# Operators whose first key makes an $elemMatch argument a query on sub-documents rather
# than a predicate on the elements (expression_parser.cpp: retrievePathlessParser).
_PATHLESS = frozenset(
    {
        "$and",
        "$or",
        "$nor",
        "$expr",
        "$where",
        "$jsonSchema",
        "$comment",
        "$text",
        "$alwaysTrue",
        "$alwaysFalse",
    }
)


def is_operator_doc(value: Any) -> bool:
    if not isinstance(value, Mapping) or not value:
        return False
    return str(next(iter(value))).startswith("$")


def truthy(value: Any) -> bool:
    """Aggregation truthiness: false, null, missing and numeric zero are false."""
    if value is None or value is MISSING or value is False:
        return False
    if is_number(value):
        return not is_nan(value) and _as_number(value) != 0
    return True


# --- value predicates ----------------------------------------------------------------------


def _over_values(vp: ValuePred, expand: bool) -> ValuesPred:
    """Any resolved value (or, when ``expand``, any element of a leaf array) satisfies ``vp``."""
    if not expand:
        return lambda values: any(vp(v) for v in values)

    def run(values: Sequence[Any]) -> bool:
        for v in values:
            if vp(v):
                return True
            if v.__class__ is list:
                for x in v:
                    if vp(x):
                        return True
        return False

    return run


def _negate(pred: ValuesPred) -> ValuesPred:
    return lambda values: not pred(values)


def _is_nullish(v: Any) -> bool:
    return v is None or v is MISSING


def eq_value_pred(rhs: Any) -> ValuePred:
    cls = rhs.__class__
    if rhs is None:
        return _is_nullish
    if cls is str or cls is ObjectId:
        return lambda v: v.__class__ is cls and v == rhs
    if cls is bool:
        return lambda v: v is rhs
    if cls in (int, Int64) or (cls is float and not math.isnan(rhs)):
        key = canonical(rhs)

        def number_eq(v: Any) -> bool:
            c = v.__class__
            if c is int or c is float or c is Int64:
                return bool(v == rhs)
            return c is Decimal128 and canonical(v) == key

        return number_eq
    key = canonical(rhs)
    return lambda v: canonical(v) == key


def is_regex(value: Any) -> bool:
    return isinstance(value, Regex | re.Pattern)


def literal_pred(value: Any, expand: bool) -> ValuesPred:
    """``{field: value}``: a regex value matches strings, anything else is equality."""
    if is_regex(value):
        return _over_values(_regex_value_pred(_compile_regex_object(value)), expand)
    return _over_values(eq_value_pred(value), expand)


# --- regular expressions -------------------------------------------------------------------

_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0}


def _compile_regex(pattern: str, options: str) -> re.Pattern[str]:
    flags = 0
    for letter in options:
        if letter not in _REGEX_FLAGS:
            # Source: src/mongo/db/matcher/expression_leaf.cpp (RegexMatchExpression).
            raise MongoError(51108, f"invalid flag in regex options: {letter}")
        flags |= _REGEX_FLAGS[letter]
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise MongoError(51091, f"Regular expression is invalid: {exc}") from exc


def _compile_regex_object(value: Any) -> re.Pattern[str]:
    if isinstance(value, re.Pattern):
        return value
    return _compile_regex(*_regex_key(value))


def _flags_to_options(flags: int) -> str:
    return "".join(letter for letter, bit in _REGEX_FLAGS.items() if bit and flags & bit)


def _regex_key(value: Any) -> tuple[str, str]:
    flags = value.flags
    options = flags if isinstance(flags, str) else _flags_to_options(int(flags))
    return (str(value.pattern), "".join(sorted(options)))


def _regex_value_pred(rx: re.Pattern[str]) -> ValuePred:
    key = _regex_key(rx)

    def vp(v: Any) -> bool:
        if v.__class__ is str:
            return rx.search(v) is not None
        # A stored BSON regex matches a query regex only when they are the same regex.
        return is_regex(v) and _regex_key(v) == key

    return vp


def _regex_op(spec: Mapping[str, Any], expand: bool) -> ValuesPred:
    pattern = spec["$regex"]
    options = spec.get("$options")
    if options is not None and not isinstance(options, str):
        raise MongoError(2, "$options has to be a string")
    if is_regex(pattern):
        if options and _compile_regex_object(pattern).flags & ~re.UNICODE:
            raise MongoError(51075, "options set in both $regex and $options")
        rx = _compile_regex_object(pattern)
        if options:
            rx = _compile_regex(rx.pattern, options)
    elif isinstance(pattern, str):
        rx = _compile_regex(pattern, options or "")
    else:
        raise MongoError(2, "$regex has to be a string")
    return _over_values(_regex_value_pred(rx), expand)


# --- field operators -----------------------------------------------------------------------


def compile_ops(spec: Mapping[str, Any], expand: bool) -> list[ValuesPred]:
    preds: list[ValuesPred] = []
    for op, arg in spec.items():
        if op == "$regex":
            preds.append(_regex_op(spec, expand))
        elif op == "$options":
            if "$regex" not in spec:
                raise MongoError(2, "$options needs a $regex")
        else:
            builder = _FIELD_OPS.get(op)
            if builder is None:
                raise MongoError(2, f"unknown operator: {op}")
            preds.append(builder(arg, expand))
    return preds


def _ops_pred(spec: Mapping[str, Any], expand: bool) -> ValuesPred:
    preds = compile_ops(spec, expand)
    if len(preds) == 1:
        return preds[0]
    return lambda values: all(p(values) for p in preds)


def _eq(arg: Any, expand: bool) -> ValuesPred:
    return _over_values(eq_value_pred(arg), expand)


def _ne(arg: Any, expand: bool) -> ValuesPred:
    if is_regex(arg):
        raise MongoError(2, "Can't have regex as arg to $ne.")
    return _negate(_eq(arg, expand))


_ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    "$lt": lambda c: c < 0,
    "$lte": lambda c: c <= 0,
    "$gt": lambda c: c > 0,
    "$gte": lambda c: c >= 0,
}


_NUMBER_CLASSES = frozenset({int, float, Int64})
_FAST_ORDER_CLASSES: dict[type, frozenset[type]] = {
    int: _NUMBER_CLASSES,
    float: _NUMBER_CLASSES,
    Int64: _NUMBER_CLASSES,
    str: frozenset({str}),
}
_PY_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$lt": operator.lt,
    "$lte": operator.le,
    "$gt": operator.gt,
    "$gte": operator.ge,
}


def _bracketed(op: str, rhs: Any) -> ValuePred:
    """A comparison that only holds between values of the same canonical BSON type.

    Source: ComparisonMatchExpressionBase::matchesSingleElement (expression_leaf.cpp):
    different types never match, except that MinKey/MaxKey bound everything, and NaN
    equals only NaN and is neither less nor greater than anything.
    """
    test = _ORDER_TESTS[op]
    rank = type_rank(rhs)
    inclusive = op in ("$lte", "$gte")
    rhs_nan = is_nan(rhs)
    if isinstance(rhs, MinKey | MaxKey):
        # Everything is below MaxKey and above MinKey; a key equals only itself.
        holds = isinstance(rhs, MaxKey) if op in ("$lt", "$lte") else isinstance(rhs, MinKey)
        return lambda v: inclusive if type_rank(v) == rank else holds

    def vp(v: Any) -> bool:
        if type_rank(v) != rank:
            return False
        if rank == 3 and (rhs_nan or is_nan(v)):
            return inclusive and rhs_nan and is_nan(v)
        return test(compare(v, rhs))

    fast_classes = _FAST_ORDER_CLASSES.get(rhs.__class__)
    if fast_classes is None or rhs_nan:
        return vp
    py_op = _PY_ORDER[op]

    def fast(v: Any) -> bool:
        # Python orders ints, floats and strs (by code point = UTF-8 byte order) as mongod
        # does; a NaN ``v`` compares false, as mongod's NaN rule wants when rhs is no NaN.
        if v.__class__ in fast_classes:
            return py_op(v, rhs)
        return vp(v)

    return fast


def _comparison(op: str) -> Callable[[Any, bool], ValuesPred]:
    def build(arg: Any, expand: bool) -> ValuesPred:
        if is_regex(arg):
            raise MongoError(2, f"Can't have RegEx as arg to predicate over field: {op}")
        return _over_values(_bracketed(op, arg), expand)

    return build


def _check_in_list(op: str, arg: Any) -> list[Any]:
    if not isinstance(arg, list | tuple):
        raise MongoError(2, f"{op} needs an array")
    for item in arg:
        if is_operator_doc(item):
            raise MongoError(2, f"cannot nest $ under {op}")
    return list(arg)


_SIMPLE_CLASSES = frozenset({str, int, float, Int64, ObjectId})


def _in_value_pred(items: list[Any]) -> ValuePred:
    values = [x for x in items if not is_regex(x)]
    regexes = [_regex_value_pred(_compile_regex_object(x)) for x in items if is_regex(x)]
    keys = {canonical(x) for x in values}
    # Plain hashing finds str/number/ObjectId values directly (1 == 1.0 hash alike, and
    # bools are kept out of the fast set since Python deems True == 1).
    simple = {x for x in values if x.__class__ in _SIMPLE_CLASSES and not is_nan(x)}
    all_simple = len(simple) == len(values)
    has_arrays = any(isinstance(x, list | tuple) for x in values)

    def vp(v: Any) -> bool:
        cls = v.__class__
        if cls in _SIMPLE_CLASSES and not (cls is float and v != v):
            return v in simple or (not all_simple and canonical(v) in keys)
        return (cls is not list or has_arrays) and canonical(v) in keys

    if not regexes:
        return vp
    return lambda v: vp(v) or any(r(v) for r in regexes)


def _in(arg: Any, expand: bool) -> ValuesPred:
    return _over_values(_in_value_pred(_check_in_list("$in", arg)), expand)


def _nin(arg: Any, expand: bool) -> ValuesPred:
    return _negate(_over_values(_in_value_pred(_check_in_list("$nin", arg)), expand))


def _exists(arg: Any, expand: bool) -> ValuesPred:
    def present(values: Sequence[Any]) -> bool:
        return any(v is not MISSING for v in values)

    return present if truthy(arg) else _negate(present)


def _not(arg: Any, expand: bool) -> ValuesPred:
    if is_regex(arg):
        return _negate(literal_pred(arg, expand))
    if not isinstance(arg, Mapping):
        raise MongoError(2, "$not needs a regex or a document")
    if not arg:
        raise MongoError(2, "$not cannot be empty")
    return _negate(_ops_pred(arg, expand))


def _size(arg: Any, expand: bool) -> ValuesPred:
    if not is_number(arg):
        raise MongoError(2, "$size needs a number")
    number = float(arg.to_decimal()) if isinstance(arg, Decimal128) else arg
    if number != int(number):
        raise MongoError(2, "$size must be a whole number")
    if number < 0:
        raise MongoError(2, "$size may not be negative")
    n = int(number)
    return _over_values(lambda v: v.__class__ is list and len(v) == n, False)


class DocumentFilter(Protocol):
    """The query compiler ``$elemMatch`` needs for elements that are documents."""

    def __call__(self, spec: Mapping[str, Any], /) -> Callable[[Mapping[str, Any]], bool]: ...


# matching.compile_filter, which registers itself (use_document_filter) when matching.py,
# the only module built on this one, is imported: a filter compiles through matching.py.
_document_filter: list[DocumentFilter] = []


def use_document_filter(compiler: DocumentFilter) -> None:
    """Compile ``$elemMatch``'s document conditions with ``compiler``."""
    _document_filter[:] = [compiler]


def _elem_match_element(arg: Mapping[str, Any]) -> ValuePred:
    first = str(next(iter(arg))) if arg else ""
    if first.startswith("$") and first not in _PATHLESS:
        # {$elemMatch: {$gt: 1, $lt: 5}}: one element satisfies every operator.
        inner = _ops_pred(arg, False)
        return lambda e: inner((e,))
    sub = _document_filter[0](arg)
    return lambda e: isinstance(e, Mapping) and sub(e)


def _elem_match(arg: Any, expand: bool) -> ValuesPred:
    if not isinstance(arg, Mapping):
        raise MongoError(2, "$elemMatch needs an Object")
    element_ok = _elem_match_element(arg)
    return _over_values(lambda v: v.__class__ is list and any(element_ok(e) for e in v), False)


def _all(arg: Any, expand: bool) -> ValuesPred:
    if not isinstance(arg, list | tuple):
        raise MongoError(2, "$all needs an array")
    if not arg:
        return lambda values: False
    elem_matches = [isinstance(x, Mapping) and next(iter(x), None) == "$elemMatch" for x in arg]
    if any(elem_matches):
        if not all(elem_matches):
            raise MongoError(2, "$all/$elemMatch has to be consistent")
        preds = [_elem_match(x["$elemMatch"], expand) for x in arg]
    else:
        if any(is_operator_doc(x) for x in arg):
            raise MongoError(2, "no $ expressions in $all")
        preds = [literal_pred(x, expand) for x in arg]
    return lambda values: all(p(values) for p in preds)


def _c_mod(value: int, divisor: int) -> int:
    # C++ '%' (which mongod uses) truncates: the remainder takes the dividend's sign.
    remainder = abs(value) % abs(divisor)
    return -remainder if value < 0 else remainder


def _as_int(value: Any) -> int | None:
    number = _as_number(value)
    if isinstance(number, float) and not math.isfinite(number):
        return None
    if isinstance(number, Decimal) and not number.is_finite():
        return None
    return int(number)


def _as_number(value: Any) -> int | float | Decimal:
    if isinstance(value, Decimal128):
        return value.to_decimal()
    return int(value) if isinstance(value, int) else float(value)


def _mod(arg: Any, expand: bool) -> ValuesPred:
    # Messages from expression_parser.cpp (parseMOD).
    if not isinstance(arg, list | tuple):
        raise MongoError(2, "malformed mod, needs to be an array")
    if len(arg) < 2:
        raise MongoError(2, "malformed mod, not enough elements")
    if len(arg) > 2:
        raise MongoError(2, "malformed mod, too many elements")
    if not is_number(arg[0]):
        raise MongoError(2, "malformed mod, divisor not a number")
    if not is_number(arg[1]):
        raise MongoError(2, "malformed mod, remainder not a number")
    divisor, remainder = _as_int(arg[0]), _as_int(arg[1])
    if divisor is None or remainder is None:
        raise MongoError(2, "malformed mod, divisor value is invalid")
    if divisor == 0:
        raise MongoError(2, "divisor cannot be 0")

    def vp(v: Any) -> bool:
        if not is_number(v):
            return False
        number = _as_int(v)
        return number is not None and _c_mod(number, divisor) == remainder

    return _over_values(vp, expand)


# $type aliases and numbers. Source: manual, "$type" (Available Types).
_TYPE_CODES: dict[str, int] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
_TYPE_NAMES = {code: name for name, code in _TYPE_CODES.items()}
_NUMBER_TYPES = frozenset({"double", "int", "long", "decimal"})


def type_alias(value: Any) -> str:
    """The ``$type`` alias of a value, with the few types bsonutil does not name."""
    if isinstance(value, Code):
        return "javascriptWithScope" if value.scope else "javascript"
    if isinstance(value, DBRef):
        return "object"
    return bson_type_name(value)


def _type_names(spec: Any) -> frozenset[str]:
    names: set[str] = set()
    for item in spec if isinstance(spec, list | tuple) else [spec]:
        if isinstance(item, str):
            if item == "number":
                names |= _NUMBER_TYPES
            elif item in _TYPE_CODES:
                names.add(item)
            else:
                raise MongoError(2, f"Unknown type name alias: {item}")
        elif is_number(item):
            code = _as_int(item)
            name = _TYPE_NAMES.get(code) if code is not None else None
            if name is None:
                raise MongoError(2, f"Invalid numerical type code: {item}")
            names.add(name)
        else:
            raise MongoError(14, "type must be represented as a number or a string")
    if not names:
        raise MongoError(9, "$type must match at least one type")
    return frozenset(names)


def _type(arg: Any, expand: bool) -> ValuesPred:
    names = _type_names(arg)
    return _over_values(lambda v: v is not MISSING and type_alias(v) in names, expand)


_FIELD_OPS: dict[str, Callable[[Any, bool], ValuesPred]] = {
    "$eq": _eq,
    "$ne": _ne,
    "$lt": _comparison("$lt"),
    "$lte": _comparison("$lte"),
    "$gt": _comparison("$gt"),
    "$gte": _comparison("$gte"),
    "$in": _in,
    "$nin": _nin,
    "$exists": _exists,
    "$not": _not,
    "$size": _size,
    "$elemMatch": _elem_match,
    "$all": _all,
    "$mod": _mod,
    "$type": _type,
}

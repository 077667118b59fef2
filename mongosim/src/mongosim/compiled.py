"""Expressions and inclusion projections compiled once into closures.

``evaluate`` (:mod:`mongosim.expressions`) interprets an expression tree for each
document: it re-dispatches on every node's type, splits every field path and looks up
every operator again. A change stream's ``$project`` runs once per event, thousands of
times per batch, so ``$project`` compiles its specification once per pipeline run
instead (mongod too parses an expression tree once per pipeline and evaluates the
parsed tree per document: src/mongo/db/pipeline/expression.h, ``Expression::parse``).

A compiled expression gives exactly what ``evaluate`` gives, errors included. Only the
operators a change-stream projection uses on its hot path have a compiled form here; a
node of any other shape or operator, and any malformed one, is left to ``evaluate``,
which then raises what it always raises, at evaluation time as before.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any

from .bsonutil import MISSING, canonical, compare
from .expressions import OPERATORS, _path, evaluate, field_path, truthy

Vars = Mapping[str, Any]
Compiled = Callable[[Mapping[str, Any], Vars], Any]
Projector = Callable[[Mapping[str, Any]], dict[str, Any]]
_ROOT_NAMES = frozenset({"ROOT", "CURRENT", "NOW", "REMOVE"})


def compile_expression(expr: Any) -> Compiled:
    """A closure ``(doc, variables) -> value`` equal to ``evaluate(expr, doc, variables)``."""
    if isinstance(expr, str):
        return _compile_string(expr)
    if isinstance(expr, list):
        items = [compile_expression(e) for e in expr]
        return lambda d, v: [_null(f(d, v)) for f in items]
    if isinstance(expr, Mapping):
        if len(expr) == 1:
            ((name, arg),) = expr.items()
            if name.startswith("$"):
                return _compile_operator(name, arg, expr)
        fields = [(key, compile_expression(sub)) for key, sub in expr.items()]
        return lambda d, v: _document(fields, d, v)
    return lambda d, v: expr


def _null(value: Any) -> Any:
    return None if value is MISSING else value


def _document(fields: list[tuple[str, Compiled]], d: Mapping[str, Any], v: Vars) -> Any:
    out = {}
    for key, f in fields:
        value = f(d, v)
        if value is not MISSING:
            out[key] = value
    return out


def _get(doc: Any, parts: list[str]) -> Any:
    """``expressions._path``, with plain documents walked inline (the common case)."""
    for i, part in enumerate(parts):
        if type(doc) is not dict:
            return _path(doc, parts[i:])
        doc = doc.get(part, MISSING)
        if doc is MISSING:
            return MISSING
    return doc


def _compile_string(expr: str) -> Compiled:
    if not expr.startswith("$"):
        return lambda d, v: expr
    if expr.startswith("$$"):
        name, _, rest = expr[2:].partition(".")
        if name == "ROOT":
            parts = rest.split(".")
            return (lambda d, v: _get(d, parts)) if rest else (lambda d, v: d)
        if name in _ROOT_NAMES:
            return lambda d, v: field_path(expr, d, v)
        parts = rest.split(".") if rest else []

        def variable(d: Mapping[str, Any], v: Vars) -> Any:
            if name not in v:
                return field_path(expr, d, v)  # a command's let, or error 17276
            base = v[name]
            return _get(base, parts) if parts else base

        return variable
    parts = expr[1:].split(".")
    return lambda d, v: _get(d, parts)


def _args(arg: Any) -> list[Compiled]:
    return [compile_expression(a) for a in (arg if isinstance(arg, list) else [arg])]


def _interpreted(expr: Mapping[str, Any]) -> Compiled:
    return lambda d, v: evaluate(expr, d, v)


def _compile_operator(name: str, arg: Any, expr: Mapping[str, Any]) -> Compiled:
    make = _FAST.get(name)
    compiled = make(arg) if make is not None else None
    if compiled is not None:
        return compiled
    fn = OPERATORS.get(name)
    if fn is None:
        return _interpreted(expr)  # error 168, when evaluated, as before
    return lambda d, v: fn(arg, d, v)


# -- the operators with a compiled form (each mirrors its twin in expressions.py) -----------
def _cond(arg: Any) -> Compiled | None:
    if isinstance(arg, Mapping):
        if not {"if", "then", "else"} <= set(arg):
            return None
        test, then, other = (compile_expression(arg[k]) for k in ("if", "then", "else"))
    elif isinstance(arg, list) and len(arg) == 3:
        test, then, other = (compile_expression(a) for a in arg)
    else:
        return None
    return lambda d, v: then(d, v) if truthy(test(d, v)) else other(d, v)


def _comparison(test: Callable[[int], bool]) -> Callable[[Any], Compiled | None]:
    def make(arg: Any) -> Compiled | None:
        args = _args(arg)
        if len(args) != 2:
            return None
        left, right = args
        return lambda d, v: test(compare(_null(left(d, v)), _null(right(d, v))))

    return make


def _filter(arg: Any) -> Compiled | None:
    if not isinstance(arg, Mapping) or "input" not in arg or "cond" not in arg:
        return None
    items, cond = compile_expression(arg["input"]), compile_expression(arg["cond"])
    name = arg.get("as", "this")

    def run(d: Mapping[str, Any], v: Vars) -> Any:
        values = items(d, v)
        if values is None or values is MISSING:
            return None
        return [e for e in values if truthy(cond(d, {**v, name: e}))]

    return run


def _constant(expr: Any) -> tuple[bool, Any]:
    """Whether ``expr`` evaluates to the same value for every document, and that value."""
    if isinstance(expr, str):
        return not expr.startswith("$"), expr
    if isinstance(expr, list):
        values = [_constant(e) for e in expr]
        return all(c for c, _ in values), [_null(x) for _, x in values]
    if isinstance(expr, Mapping):
        if len(expr) == 1 and "$literal" in expr:
            return True, expr["$literal"]
        return False, None
    return True, expr


def _in(arg: Any) -> Compiled | None:
    if not isinstance(arg, list) or len(arg) != 2:
        return None
    needle = compile_expression(arg[0])
    fixed, hay = _constant(arg[1])
    if not fixed or not isinstance(hay, list):
        return None  # a computed array, or error 40081: left to evaluate
    try:
        keys: frozenset[Hashable] = frozenset(canonical(e) for e in hay)
    except TypeError:
        return None
    return lambda d, v: canonical(_null(needle(d, v))) in keys


def _array_elem_at(arg: Any) -> Compiled | None:
    args = _args(arg)
    if len(args) != 2:
        return None
    array_of, index_of = args

    def run(d: Mapping[str, Any], v: Vars) -> Any:
        array, index = _null(array_of(d, v)), _null(index_of(d, v))
        if array is None or index is None:
            return None
        i = int(index)
        return array[i] if -len(array) <= i < len(array) else MISSING

    return run


def _split(arg: Any) -> Compiled | None:
    args = _args(arg)
    if len(args) != 2:
        return None
    text_of, separator_of = args

    def run(d: Mapping[str, Any], v: Vars) -> Any:
        text, separator = _null(text_of(d, v)), _null(separator_of(d, v))
        return None if text is None else str(text).split(str(separator))

    return run


def _converter(fn: Callable[[Any], Any]) -> Callable[[Any], Compiled | None]:
    def make(arg: Any) -> Compiled | None:
        args = _args(arg)
        if not args:
            return None

        def run(d: Mapping[str, Any], v: Vars) -> Any:
            values = [_null(f(d, v)) for f in args]  # each is evaluated, as in evaluate
            return None if values[0] is None else fn(values[0])

        return run

    return make


def _array_to_object(arr: Any) -> Any:
    return {
        (e["k"] if isinstance(e, Mapping) else e[0]): (e["v"] if isinstance(e, Mapping) else e[1])
        for e in arr
    }


_FAST: dict[str, Callable[[Any], Compiled | None]] = {
    "$literal": lambda arg: lambda d, v: arg,
    "$cond": _cond,
    "$eq": _comparison(lambda c: c == 0),
    "$ne": _comparison(lambda c: c != 0),
    "$gt": _comparison(lambda c: c > 0),
    "$gte": _comparison(lambda c: c >= 0),
    "$lt": _comparison(lambda c: c < 0),
    "$lte": _comparison(lambda c: c <= 0),
    "$filter": _filter,
    "$in": _in,
    "$arrayElemAt": _array_elem_at,
    "$split": _split,
    "$objectToArray": _converter(lambda o: [{"k": k, "v": x} for k, x in o.items()]),
    "$arrayToObject": _converter(_array_to_object),
}


# -- inclusion projections ---------------------------------------------------------------------
# A tree of included paths: True keeps the whole value, a dict keeps those of its fields.
Tree = dict[str, Any]


def _included(value: Any) -> bool:
    return value is True or (isinstance(value, int) and not isinstance(value, bool) and value != 0)


def compile_inclusion(spec: Mapping[str, Any]) -> Projector | None:
    """An inclusion ``$project`` as one closure per document; None for a specification
    this does not compile (nested specifications, a dotted computed field, a path that
    collides with another), which the interpreter then runs as before.

    The output matches the interpreter's: ``_id`` first unless excluded or listed, then
    each top-level field in the order the specification first names it. Included
    sub-paths of an array keep those fields of each embedded document and drop other
    elements ("Project Fields to Return from Query > Embedded Documents in an Array").
    """
    keep_id = spec.get("_id", 1) not in (0, False) and "_id" not in spec
    steps: list[tuple[str, Any]] = []  # (top-level field, its Tree/True, or a Compiled)
    trees: dict[str, Any] = {}
    computed: set[str] = set()
    for key, value in spec.items():
        if _included(value):
            parts = key.split(".")
            head = parts[0]
            if head in computed or not _add_path(trees, parts):
                return None
            if not any(step[0] == head for step in steps):
                steps.append((head, None))
        elif value in (0, False):
            continue
        elif isinstance(value, Mapping) and value and not next(iter(value)).startswith("$"):
            return None
        else:
            if "." in key or key in trees or key in computed:
                return None
            computed.add(key)
            steps.append((key, compile_expression(value)))
    plan: list[tuple[str, Any, Compiled | None]] = [
        (head, trees[head] if f is None else None, f) for head, f in steps
    ]

    def project(doc: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if keep_id and "_id" in doc:
            out["_id"] = doc["_id"]
        for head, tree, f in plan:
            if f is not None:
                result = f(doc, {})
            elif head not in doc:
                continue
            elif tree is True:
                result = doc[head]
            else:
                result = _keep(doc[head], tree)
            if result is not MISSING:
                out[head] = result
        return out

    return project


def _add_path(trees: Tree, parts: list[str]) -> bool:
    """Add one included path; False when it collides with another (``a`` and ``a.b``)."""
    node = trees
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if child is True:
            return False
        node = child
    if parts[-1] in node:
        return False
    node[parts[-1]] = True
    return True


def _keep(value: Any, tree: Tree) -> Any:
    """What an inclusion of ``tree``'s paths keeps of ``value``; MISSING if nothing."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in tree.items():
            if key in value:
                kept = value[key] if sub is True else _keep(value[key], sub)
                if kept is not MISSING:
                    out[key] = kept
        return out or MISSING
    if isinstance(value, list):
        kept_items = [_keep(e, tree) for e in value if isinstance(e, Mapping)]
        return [k for k in kept_items if k is not MISSING]
    return MISSING

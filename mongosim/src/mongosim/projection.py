"""find / findAndModify projections (MongoDB 4.4+ rules).

The parser follows mongod's ``projection_ast`` parser (src/mongo/db/query/projection_parser.cpp):
its error codes, how the projection's type (inclusion or exclusion) is decided, and the
default inclusion of ``_id``. Applying a projection follows the manual: included fields
keep the document's order; computed fields, ``$slice``, ``$elemMatch`` and positional
results of an inclusion projection come after them ("$elemMatch (projection)", Field Order).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .bsonutil import MISSING, is_number
from .errors import MongoError
from .expressions import evaluate
from .matching import Matcher, compile_filter

Projector = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class _Slice:
    skip: int | None
    limit: int


@dataclass(frozen=True)
class _ElemMatch:
    matcher: Matcher  # applied to {"e": [element]}


@dataclass(frozen=True)
class _Positional:
    matcher: Matcher | None  # applied to {"e": [element]}; None: the query has no condition


@dataclass(frozen=True)
class _Computed:
    expr: Any


class _Meta:
    """``{$meta: ...}``: mongosim computes no scores, so the field is left out."""


_META = _Meta()


@dataclass
class _Level:
    """One level of the projection tree: field name -> leaf or sub-level, in spec order."""

    children: dict[str, Any] = field(default_factory=dict)
    computes: bool = False  # a computed field lies below: missing parents get created

    def finish(self) -> bool:
        for child in self.children.values():
            if isinstance(child, _Level):
                self.computes = child.finish() or self.computes
            elif isinstance(child, _Computed):
                self.computes = True
        return self.computes


# --- parsing -------------------------------------------------------------------------------


class _Parser:
    def __init__(self, query: Mapping[str, Any] | None) -> None:
        self.query = query
        self.root = _Level()
        self.type: str | None = None
        self.has_positional = self.has_elem_match = self.has_slice = self.has_meta = False
        self.id_included = self.id_excluded = self.id_specified = False

    def parse(self, spec: Mapping[str, Any]) -> None:
        for key, value in spec.items():
            if key == "_id" or key.startswith("_id."):
                self.id_specified = True
            self.element(key, value, self.root, top=True)
        if self.type is None:
            self.type = self._default_type()
        if not self.id_specified and self.type == "inclusion":
            self.root.children["_id"] = True
        if self.type == "exclusion" and self.root.children.get("_id") is True:
            del self.root.children["_id"]

    def _default_type(self) -> str:
        # computeProjectionType in projection_parser.cpp: the find-only rules kept for
        # projections made of nothing but _id, $slice, $elemMatch and $meta.
        if self.has_slice:
            return "inclusion" if self.id_included else "exclusion"
        if self.has_elem_match:
            return "inclusion"
        if self.has_meta:
            return "inclusion" if self.id_included else "exclusion"
        return "inclusion" if self.id_included else "exclusion"

    def _set_type(self, wanted: str, code: int, message: str) -> None:
        if self.type is not None and self.type != wanted:
            raise MongoError(code, message)
        self.type = wanted

    def element(self, key: str, value: Any, parent: _Level, top: bool) -> None:
        if ".$." in key:
            raise MongoError(
                31394,
                "As of 4.4, it's illegal to specify positional operator in "
                "the middle of a path.Positional projection may only be "
                "used at the end, for example: a.b.$. If the query "
                "previously used a form like a.b.$.d, remove the parts "
                "following the '$' and the results will be equivalent.",
            )
        positional = key.endswith(".$")
        if isinstance(value, Mapping):
            if positional:
                raise MongoError(
                    31271, "positional projection cannot be used with an expression or sub object"
                )
            self.sub_object(key, value, parent, top)
        elif isinstance(value, bool) or is_number(value):
            if _truthy_flag(value):
                self.inclusion(key, parent, top)
            else:
                if positional:
                    raise MongoError(31395, "positional projection cannot be used with exclusion")
                self.exclusion(key, parent, top)
        else:
            if positional:
                raise MongoError(31308, "positional projection cannot be used with a literal")
            self._set_type(
                "inclusion",
                31310,
                f"Cannot use an expression {key}: {value!r} in an exclusion projection",
            )
            _add(parent, key, _Computed({"$literal": value} if _is_plain(value) else value))

    def inclusion(self, key: str, parent: _Level, top: bool) -> None:
        is_id = top and key == "_id"
        if key.endswith(".$"):
            self.positional(key, parent)
        else:
            _add(parent, key, True)
            self.id_included = self.id_included or is_id
        if not is_id:
            self._set_type(
                "inclusion", 31253, f"Cannot do inclusion on field {key} in exclusion projection"
            )

    def exclusion(self, key: str, parent: _Level, top: bool) -> None:
        _add(parent, key, False)
        if top and key == "_id":
            self.id_excluded = True
            return
        self._set_type(
            "exclusion", 31254, f"Cannot do exclusion on field {key} in inclusion projection"
        )

    def positional(self, key: str, parent: _Level) -> None:
        if self.has_positional:
            raise MongoError(31276, "Cannot specify more than one positional projection per query.")
        if self.has_elem_match:
            raise MongoError(31256, "Cannot specify positional operator and $elemMatch.")
        if self.query is None:
            raise MongoError(51050, "Projections with a positional operator require a matcher")
        if key == ".$":
            raise MongoError(5392900, f"Projection on field {key} is invalid")
        path = key[:-2]
        _add(parent, path, _Positional(_positional_matcher(self.query, path)))
        self.has_positional = True

    def sub_object(self, key: str, value: Mapping[str, Any], parent: _Level, top: bool) -> None:
        if not value:
            raise MongoError(51270, f"Invalid empty sub-projection: {key}")
        first = str(next(iter(value)))
        if len(value) == 1 and first.startswith("$"):
            self.operator(key, first, value[first], parent, top)
            return
        level = _child_level(parent, key)
        for sub_key, sub_value in value.items():
            self.element(sub_key, sub_value, level, top=False)

    def operator(self, key: str, op: str, arg: Any, parent: _Level, top: bool) -> None:
        if op == "$slice" and _find_slice(arg) is not None:
            _add(parent, key, _find_slice(arg))
            self.has_slice = True
        elif op == "$elemMatch":
            self.elem_match(key, arg, parent, top)
        elif op == "$meta":
            _add(parent, key, _META)
            self.has_meta = True
        else:
            self._set_type(
                "inclusion", 31252, "Cannot use expression other than $meta in exclusion projection"
            )
            _add(parent, key, _Computed({op: arg}))

    def elem_match(self, key: str, arg: Any, parent: _Level, top: bool) -> None:
        if not isinstance(arg, Mapping):
            raise MongoError(
                31274, f"elemMatch: Invalid argument, object required, but got {type(arg).__name__}"
            )
        if self.has_positional:
            raise MongoError(31255, "Cannot specify positional operator and $elemMatch.")
        if not top or "." in key:
            raise MongoError(31275, "Cannot use $elemMatch projection on a nested field.")
        _add(parent, key, _ElemMatch(compile_filter({"e": {"$elemMatch": arg}})))
        self.has_elem_match = True


def _truthy_flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return bool(value.to_decimal() != 0) if hasattr(value, "to_decimal") else bool(value != 0)


def _is_plain(value: Any) -> bool:
    """Literals that evaluate to themselves (strings starting with '$' are field paths)."""
    return not isinstance(value, str | list | tuple)


def _find_slice(arg: Any) -> _Slice | None:
    """The find() form of $slice, or None when ``arg`` is the aggregation $slice form."""
    if is_number(arg):
        return _Slice(None, int(arg))
    if not isinstance(arg, list | tuple):
        raise MongoError(31273, "$slice only supports numbers and [skip, limit] arrays")
    if len(arg) != 2:
        raise MongoError(31272, "$slice array argument should be of form [skip, limit]")
    skip, limit = arg
    if not is_number(skip):
        return None  # e.g. {$slice: ["$arr", 2]}: an aggregation expression
    if not is_number(limit):
        raise MongoError(31258, "$slice expects the limit argument to be a number")
    if int(limit) <= 0:
        raise MongoError(31259, f"$slice limit must be positive, got {int(limit)}")
    return _Slice(int(skip), int(limit))


def _child_level(parent: _Level, key: str) -> _Level:
    level = parent
    parts = key.split(".")
    for i, part in enumerate(parts):
        child = level.children.get(part)
        if child is None:
            child = level.children[part] = _Level()
        elif not isinstance(child, _Level):
            raise MongoError(
                31249, f"Path collision at {key} remaining portion {'.'.join(parts[i:])}"
            )
        level = child
    return level


def _add(parent: _Level, key: str, node: Any) -> None:
    head, _, last = key.rpartition(".")
    level = _child_level(parent, head) if head else parent
    if last in level.children:
        raise MongoError(31250, f"Path collision at {key}")
    level.children[last] = node


def _query_conditions(query: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in query.items():
        if key == "$and" and isinstance(value, list | tuple):
            for branch in value:
                if isinstance(branch, Mapping):
                    out.extend(_query_conditions(branch))
        elif not key.startswith("$"):
            out.append((key, value))
    return out


def _positional_matcher(query: Mapping[str, Any], path: str) -> Matcher | None:
    """Which array element the query matched: its conditions on ``path`` and sub-paths,
    tested against a one-element array so that element-wise semantics apply."""
    prefix = path + "."
    conditions = {
        ("e" + key[len(path) :]): value
        for key, value in _query_conditions(query)
        if key == path or key.startswith(prefix)
    }
    return compile_filter(conditions) if conditions else None


# --- applying ------------------------------------------------------------------------------


def _first_match(value: Any, matcher: Matcher | None) -> Any:
    if value.__class__ is not list or matcher is None:
        return MISSING
    for element in value:
        if matcher({"e": [element]}):
            return [element]
    return MISSING


def _apply_slice(value: Any, node: _Slice) -> Any:
    if value.__class__ is not list:
        return value
    if node.skip is None:
        return value[: node.limit] if node.limit >= 0 else value[node.limit :]
    start = node.skip if node.skip >= 0 else max(len(value) + node.skip, 0)
    return value[start : start + node.limit]


def _special(node: Any, doc: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Any:
    if isinstance(node, _Computed):
        return evaluate(node.expr, root)
    value = doc.get(key, MISSING)
    if value is MISSING or isinstance(node, _Meta):
        return MISSING
    if isinstance(node, _Slice):
        return _apply_slice(value, node)
    if isinstance(node, _ElemMatch):
        return _first_match(value, node.matcher)
    found = _first_match(value, node.matcher)
    if found is MISSING:
        raise MongoError(
            51246, "positional operator '.$' couldn't find a matching element in the array"
        )
    return found


def _include(doc: Mapping[str, Any], level: _Level, root: Mapping[str, Any]) -> dict[str, Any]:
    children = level.children
    out: dict[str, Any] = {}
    for key, value in doc.items():
        node = children.get(key)
        if node is True:
            out[key] = value
        elif isinstance(node, _Level):
            projected = _include_value(value, node, root)
            if projected is not MISSING:
                out[key] = projected
    for key, node in children.items():
        if isinstance(node, _Level):
            if key not in doc and node.computes:
                out[key] = _include({}, node, root)
        elif node is not True and node is not False:
            value = _special(node, doc, key, root)
            if value is not MISSING:
                out[key] = value
    return out


def _include_value(value: Any, level: _Level, root: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return _include(value, level, root)
    if value.__class__ is list:
        projected = (_include_value(e, level, root) for e in value)
        return [p for p in projected if p is not MISSING]
    return _include({}, level, root) if level.computes else MISSING


def _exclude(doc: Mapping[str, Any], level: _Level, root: Mapping[str, Any]) -> dict[str, Any]:
    children = level.children
    out: dict[str, Any] = {}
    for key, value in doc.items():
        node = children.get(key)
        if node is None:
            out[key] = value
        elif isinstance(node, _Level):
            out[key] = _exclude_value(value, node, root)
        elif node is not False:
            projected = _special(node, doc, key, root)
            if projected is not MISSING:
                out[key] = projected
    return out


def _exclude_value(value: Any, level: _Level, root: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        return _exclude(value, level, root)
    if value.__class__ is list:
        return [_exclude_value(e, level, root) for e in value]
    return value


def _identity(doc: dict[str, Any]) -> dict[str, Any]:
    return doc


def compile_projection(
    spec: Mapping[str, Any] | None, query: Mapping[str, Any] | None = None
) -> Projector:
    """A function projecting documents as find's ``projection`` ``spec`` does.

    ``query`` is the find filter, needed by positional (``"arr.$"``) projections. An empty
    or missing spec returns documents unchanged (the same object, not a copy); otherwise
    the result is a new dict sharing unchanged values with the input.
    """
    if not spec:
        return _identity
    if not isinstance(spec, Mapping):
        raise MongoError(14, "projection must be an object")
    parser = _Parser(query)
    parser.parse(spec)
    root = parser.root
    root.finish()
    if parser.type == "inclusion":
        return lambda doc: _include(doc, root, doc)
    return lambda doc: _exclude(doc, root, doc)

"""Sort specifications: ``compile_sort`` turns ``{a: 1, "b.c": -1}`` into a key function.

Source: MongoDB manual, "Comparison/Sort Order": an ascending sort on an array field uses
the array's smallest element and a descending sort its largest; a missing field sorts as
null; an empty array sorts below null. Values reached through arrays of sub-documents fan
out like index keys (an element without the field counts as null).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from .bsonutil import MISSING, compare, is_number, type_rank
from .errors import MongoError

SortKeyFunc = Callable[[Mapping[str, Any]], "SortKeyTuple"]


class _EmptyArray:
    """An empty array's sort value: above MinKey, below null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[]"


EMPTY_ARRAY: Final = _EmptyArray()

_META_KEYS = frozenset(
    {
        "textScore",
        "searchScore",
        "searchHighlights",
        "indexKey",
        "sortKey",
        "recordId",
        "randVal",
        "geoNearDistance",
        "geoNearPoint",
        "searchSequenceToken",
        "score",
        "vectorSearchScore",
    }
)


def _rank(value: Any) -> float:
    return 1.5 if value is EMPTY_ARRAY else type_rank(value)


def compare_sort_values(a: Any, b: Any) -> int:
    """Order two extracted sort values (ascending)."""
    cls = a.__class__
    if cls is b.__class__ and (cls is int or cls is str):
        return int(a > b) - int(a < b)
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    return 0 if a is EMPTY_ARRAY else compare(a, b)


class SortKeyTuple:
    """A document's sort key: compares field by field, honouring each direction."""

    __slots__ = ("directions", "values")

    def __init__(self, values: tuple[Any, ...], directions: tuple[int, ...]) -> None:
        self.values = values
        self.directions = directions

    def _cmp(self, other: SortKeyTuple) -> int:
        for a, b, direction in zip(self.values, other.values, self.directions, strict=True):
            c = compare_sort_values(a, b)
            if c:
                return c * direction
        return 0

    def __lt__(self, other: SortKeyTuple) -> bool:
        return self._cmp(other) < 0

    def __gt__(self, other: SortKeyTuple) -> bool:
        return self._cmp(other) > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SortKeyTuple) and self._cmp(other) == 0

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SortKeyTuple({self.values!r}, {self.directions!r})"


def _collect(value: Any, parts: tuple[str, ...], i: int, out: list[Any]) -> None:
    """Append the sort candidates of ``parts[i:]`` under ``value`` (index-key style)."""
    while i < len(parts):
        if isinstance(value, Mapping):
            value = value.get(parts[i], MISSING)
            i += 1
        elif value.__class__ is list:
            part = parts[i]
            if part.isdigit() and int(part) < len(value):
                _collect(value[int(part)], parts, i + 1, out)
            elif not value:
                out.append(None)
            else:
                for element in value:
                    _collect(element, parts, i, out)
            return
        else:
            out.append(None)
            return
    _collect_leaf(value, out)


def _collect_leaf(value: Any, out: list[Any]) -> None:
    if value is MISSING:
        out.append(None)
    elif value.__class__ is list:
        if value:
            out.extend(value)
        else:
            out.append(EMPTY_ARRAY)
    else:
        out.append(value)


def _pick(candidates: list[Any], direction: int) -> Any:
    best = candidates[0]
    for value in candidates[1:]:
        if compare_sort_values(value, best) * direction < 0:
            best = value
    return best


def _extractor(path: str, direction: int) -> Callable[[Mapping[str, Any]], Any]:
    if "." not in path:

        def top_level(doc: Mapping[str, Any]) -> Any:
            value = doc.get(path, MISSING)
            if value.__class__ is list or value is MISSING:
                out: list[Any] = []
                _collect_leaf(value, out)
                return _pick(out, direction)
            return value

        return top_level
    parts = tuple(path.split("."))

    def dotted(doc: Mapping[str, Any]) -> Any:
        out: list[Any] = []
        _collect(doc, parts, 0, out)
        return _pick(out, direction)

    return dotted


def _direction(path: str, value: Any) -> int | None:
    """1 or -1; None for a ``$meta`` key that mongosim does not score (it sorts as equal)."""
    if isinstance(value, Mapping):
        if len(value) == 1 and value.get("$meta") in _META_KEYS:
            return None
        raise MongoError(
            17312, f"$meta is the only expression supported by $sort right now: {path}"
        )
    if is_number(value) and not isinstance(value, bool) and value in (1, -1):
        return int(value)
    # Source: src/mongo/db/query/sort_pattern.cpp.
    raise MongoError(15975, "$sort key ordering must be 1 (for ascending) or -1 (for descending)")


def _check_path(path: str) -> None:
    # Messages from src/mongo/db/pipeline/field_path.cpp.
    if not path:
        raise MongoError(40352, "FieldPath cannot be constructed with empty string")
    if "" in path.split("."):
        raise MongoError(15998, "FieldPath field names may not be empty strings.")
    if path.startswith("$"):
        raise MongoError(
            16410,
            "FieldPath field names may not start with '$'. Consider using $getField or $setField.",
        )


def compile_sort(spec: Mapping[str, Any]) -> SortKeyFunc:
    """A key function for ``sorted``/``heapq`` that orders documents as ``spec`` does.

    ``$natural`` is the storage order: callers handle it; it adds nothing to the key.
    """
    extractors: list[Callable[[Mapping[str, Any]], Any]] = []
    directions: list[int] = []
    for path, value in spec.items():
        if path == "$natural":
            continue
        _check_path(path)
        direction = _direction(path, value)
        if direction is not None:
            extractors.append(_extractor(path, direction))
            directions.append(direction)
    dirs = tuple(directions)
    if len(extractors) == 1:
        (only,) = extractors
        return lambda doc: SortKeyTuple((only(doc),), dirs)
    return lambda doc: SortKeyTuple(tuple(e(doc) for e in extractors), dirs)


def top_k(docs: Iterable[Mapping[str, Any]], key: SortKeyFunc, k: int) -> list[Any]:
    """The first ``k`` documents in sort order (stable, like ``sorted(...)[:k]``)."""
    return heapq.nsmallest(k, docs, key=key)

"""The paths an update writes: set or unset a dotted path, and expand ``$``, ``$[]`` and
``$[<id>]`` (the positional operators, with ``arrayFilters``) into concrete paths.

mongod's rules (manual: "$ (update)", "$[]", "$[<identifier>]"): ``$`` is the first
array element the query matched, ``$[]`` every element, ``$[<id>]`` the elements its
array filter matches; setting a path creates the documents it lacks and pads arrays
with null.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .bsonutil import MISSING, get_path
from .errors import MongoError
from .matching import compile_filter


def clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def child(container: Any, part: str) -> Any:
    if isinstance(container, dict):
        return container.get(part, MISSING)
    if isinstance(container, list) and part.isdigit():
        i = int(part)
        return container[i] if i < len(container) else MISSING
    return MISSING


def set_path(doc: Any, parts: list[str], value: Any) -> None:
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


def unset_path(doc: Any, parts: list[str]) -> bool:
    container = doc
    for part in parts[:-1]:
        container = child(container, part)
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


def expand_path(doc: Any, path: str, ctx: PathContext) -> list[str]:
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


class PathContext:
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

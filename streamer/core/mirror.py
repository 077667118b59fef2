"""Each source document's last applied state, and how one change moves it.

For every source document the service keeps the projected fields it has applied (in
``streamer_mirror_<stream>``). An event's own state is then exact: an insert or
replace carries it, an update is its update description applied to the previous
state, a delete ends it. The mirror also makes every effect a difference between two
states, which is what lets a resync converge instead of double counting.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .changes import Change

State = dict[str, Any]


class UnknownPriorState(Exception):
    """An update arrived for a document whose previous state was never recorded."""


def _walk(doc: Any, parts: list[str]) -> Any:
    """The container holding the last path segment, or None if the path is broken."""
    node = doc
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def set_path(doc: State, path: str, value: Any) -> None:
    """``$set`` semantics for a dotted path (creating missing embedded documents)."""
    parts = path.split(".")
    node: Any = doc
    for part in parts[:-1]:
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            while len(node) <= index:
                node.append(None)
            if not isinstance(node[index], dict | list):
                node[index] = {}
            node = node[index]
        elif isinstance(node, dict):
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
        else:
            return
    last = parts[-1]
    if isinstance(node, list) and last.isdigit():
        index = int(last)
        while len(node) <= index:
            node.append(None)
        node[index] = value
    elif isinstance(node, dict):
        node[last] = value


def unset_path(doc: State, path: str) -> None:
    parts = path.split(".")
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = None  # $unset of an array element leaves null


def truncate_path(doc: State, path: str, size: int) -> None:
    parts = path.split(".")
    target = _walk(doc, parts)
    if isinstance(target, list):
        del target[size:]


def next_state(prior: State | None, change: Change) -> State | None:
    """The document's state after ``change``; None once deleted.

    Raises :class:`UnknownPriorState` for an update to a document never seen.

    Copies only what changes (this runs once per event): an insert or replace takes
    the event's own decoded document, which nothing else holds; an update copies the
    previous state shallowly, and a top-level value deeply only before a nested path
    inside it is changed in place. States are never mutated once made.
    """
    if change.op == "delete":
        return None
    if change.op in ("insert", "replace"):
        full = change.full
        return full if type(full) is dict else dict(full or {})
    if prior is None:
        raise UnknownPriorState(change.key)
    state = dict(prior)
    update = change.update
    if update is not None:
        # Truncations first: updatedFields may then set elements of the shorter array.
        for path, size in update.truncated:
            _own(state, path, nested=True)
            truncate_path(state, path, size)
        for path in update.removed:
            _own(state, path)
            unset_path(state, path)
        for path, value in update.updated.items():
            _own(state, path)
            set_path(state, path, value)
    return state


def _own(state: State, path: str, *, nested: bool = False) -> None:
    """Before changing ``path`` in place: a private copy of the top-level value it is in."""
    top, dot, _ = path.partition(".")
    if (dot or nested) and isinstance(state.get(top), dict | list):
        state[top] = copy.deepcopy(state[top])


def project(doc: Mapping[str, Any], fields: tuple[str, ...]) -> State:
    """The fields a stream keeps of a source document (what the pipeline projects)."""
    return {name: copy.deepcopy(doc[name]) for name in fields if name in doc}


def same_state(a: Any, b: Any) -> bool:
    """Equal as BSON values: same types, same field order (Python's ``==`` says True == 1
    == 1.0, and an order's amount changing from 1 to true is a change)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_state(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    return bool(a == b)

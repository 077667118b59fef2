"""What an update changed, as the change event's ``updateDescription`` reports it.

Operators record the paths they touched in a :class:`ChangeLog`; :func:`describe` turns
that into mongod's v2 oplog diff: ``$set``/``$inc``/... of a path report that path, array
operators report changed elements (``arr.3``) or ``truncatedArrays``, ``$unset`` reports
``removedFields``; nothing is reported for a value that did not change. A pipeline update
has no operators, so :func:`diff_documents` compares the whole documents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .bsonutil import MISSING, canonical, get_path


@dataclass(slots=True)
class ChangeLog:
    set_paths: list[str] = field(default_factory=list)
    array_paths: list[str] = field(default_factory=list)
    unset_paths: list[str] = field(default_factory=list)


def describe(before: Mapping[str, Any], after: Mapping[str, Any], log: ChangeLog) -> dict[str, Any]:
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

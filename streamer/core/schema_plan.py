"""The pure plan that applies the declarative schema: what to create, change or report.

:func:`plan` compares the declaration (:mod:`streamer.core.schema`) with what
``listCollections`` and ``listIndexes`` returned and says what to do. It does no I/O, so
every rule is unit-tested without a server; :mod:`streamer.runtime.bootstrap` does the
reading and the applying. The rules:

* a missing collection is created with its validator; missing indexes are created;
* a TTL that differs (``expireAfterSeconds``) and a validator, ``validationLevel`` or
  ``validationAction`` that differs are changed in place with ``collMod`` (no index
  rebuild, no window without the index);
* an existing index with the declared name, or with the declared key pattern, but other
  options is a *conflict*: reported with before/after, never dropped unless asked;
* an index nobody declared is reported as a note and kept: it is not drift.

Both sides are compared in the shape of :mod:`streamer.core.index_shapes`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .index_shapes import KeyPattern, index_text, normalize_index, normalize_value, validation_text
from .schema import DEFAULT_ACTION, DEFAULT_LEVEL, CollectionSpec, IndexSpec, Schema

__all__ = ["Action", "ActionKind", "Conflict", "Note", "Plan", "plan"]


class ActionKind(enum.Enum):
    CREATE_COLLECTION = "create_collection"
    CREATE_INDEX = "create_index"
    MODIFY_INDEX_TTL = "modify_index_ttl"
    MODIFY_VALIDATION = "modify_validation"


@dataclass(frozen=True)
class Action:
    """One change to make; ``command`` is the database command that makes it."""

    kind: ActionKind
    collection: str
    command: Mapping[str, Any]
    index: str | None = None
    before: str | None = None
    after: str | None = None

    def describe(self) -> str:
        if self.kind is ActionKind.CREATE_COLLECTION:
            validated = " with validator" if "validator" in self.command else ""
            return f"create collection {self.collection}{validated}"
        if self.kind is ActionKind.CREATE_INDEX:
            return f"create index {self.collection}.{self.after}"
        if self.kind is ActionKind.MODIFY_INDEX_TTL:
            return (
                f"change expireAfterSeconds of index {self.collection}.{self.index} in place "
                f"(collMod): {self.before} -> {self.after}"
            )
        return (
            f"change validation of {self.collection} in place (collMod): "
            f"before: {self.before}; after: {self.after}"
        )


@dataclass(frozen=True)
class Conflict:
    """A declared index that an existing one blocks: same name or keys, other options."""

    collection: str
    index: str
    reason: str
    existing: tuple[str, ...]  # names of the existing indexes in the way
    before: str
    after: str
    declared: Mapping[str, Any]  # the createIndexes entry that replaces them

    def describe(self) -> str:
        return (
            f"index {self.collection}.{self.index} ({self.reason}): "
            f"before: {self.before}; after: {self.after}"
        )


@dataclass(frozen=True)
class Note:
    """Information that is not drift (an undeclared index, kept)."""

    collection: str
    message: str


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    notes: tuple[Note, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return not self.actions and not self.conflicts


def plan(
    schema: Schema,
    collections: Sequence[Mapping[str, Any]],
    indexes: Mapping[str, Sequence[Mapping[str, Any]]],
) -> Plan:
    """What to do to make the observed database match ``schema``.

    ``collections`` are ``listCollections`` entries; ``indexes`` maps a collection name
    to its ``listIndexes`` documents (a collection missing from it has none).
    """
    existing = {str(c["name"]): c for c in collections if "name" in c}
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    notes: list[Note] = []
    for coll in schema.collections:
        info = existing.get(coll.name)
        if info is None:
            command = {"create": coll.name, **coll.validation_options()}
            actions.append(Action(ActionKind.CREATE_COLLECTION, coll.name, command))
        else:
            validation = _plan_validation(coll, info.get("options") or {})
            if validation is not None:
                actions.append(validation)
        observed = list(indexes.get(coll.name, ())) if info is not None else []
        idx_actions, idx_conflicts, idx_notes = _plan_indexes(coll, observed)
        actions += idx_actions
        conflicts += idx_conflicts
        notes += idx_notes
    return Plan(tuple(actions), tuple(conflicts), tuple(notes))


def _plan_validation(coll: CollectionSpec, options: Mapping[str, Any]) -> Action | None:
    if coll.validator is None:
        return None
    current = {
        "validator": options.get("validator") or None,
        "validationLevel": options.get("validationLevel", DEFAULT_LEVEL),
        "validationAction": options.get("validationAction", DEFAULT_ACTION),
    }
    wanted = coll.validation_options()
    if normalize_value(current) == normalize_value(wanted):
        return None
    return Action(
        ActionKind.MODIFY_VALIDATION,
        coll.name,
        {"collMod": coll.name, **wanted},
        before=validation_text(current),
        after=validation_text(wanted),
    )


class _Existing(NamedTuple):
    """An index the database reported, with its normalised name, keys and options."""

    doc: Mapping[str, Any]
    name: str
    pattern: KeyPattern
    options: dict[str, Any]


def _existing(doc: Mapping[str, Any]) -> _Existing:
    return _Existing(doc, *normalize_index(doc))


def _plan_indexes(
    coll: CollectionSpec, observed: Sequence[Mapping[str, Any]]
) -> tuple[list[Action], list[Conflict], list[Note]]:
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    current = [_existing(doc) for doc in observed if doc.get("name") != "_id_"]
    claimed: set[str] = set()
    for ix in coll.indexes:
        spec = ix.command_spec()
        _, pattern, options = normalize_index(spec)
        by_name = [have for have in current if have.name == ix.name]
        by_keys = [have for have in current if have.pattern == pattern and have.name != ix.name]
        in_the_way = by_name + by_keys
        claimed.update(have.name for have in in_the_way)
        if not in_the_way:
            actions.append(
                Action(
                    ActionKind.CREATE_INDEX,
                    coll.name,
                    {"createIndexes": coll.name, "indexes": [spec]},
                    index=ix.name,
                    after=index_text(spec),
                )
            )
            continue
        if by_name and not by_keys:
            have = by_name[0]
            if have.pattern == pattern and have.options == options:
                continue
            ttl = _ttl_change(coll.name, ix, have.pattern == pattern, have.options, options)
            if ttl is not None:
                actions.append(ttl)
                continue
        reason = "same name, different keys or options" if by_name else "same keys, other name"
        if by_name and by_keys:
            reason = "same name and same keys held by different indexes"
        conflicts.append(
            Conflict(
                collection=coll.name,
                index=ix.name,
                reason=reason,
                existing=tuple(have.name for have in in_the_way),
                before="; ".join(index_text(have.doc) for have in in_the_way),
                after=index_text(spec),
                declared=spec,
            )
        )
    notes = [
        Note(coll.name, f"undeclared index {coll.name}.{index_text(have.doc)} (kept)")
        for have in current
        if have.name not in claimed
    ]
    return actions, conflicts, notes


def _ttl_change(
    coll: str,
    ix: IndexSpec,
    same_keys: bool,
    have: Mapping[str, Any],
    want: Mapping[str, Any],
) -> Action | None:
    """A collMod when the only difference is the TTL (both sides being TTL indexes)."""
    ttl = "expireAfterSeconds"
    if not same_keys or ttl not in have or ttl not in want:
        return None
    rest_have = {k: v for k, v in have.items() if k != ttl}
    rest_want = {k: v for k, v in want.items() if k != ttl}
    if rest_have != rest_want:
        return None
    return Action(
        ActionKind.MODIFY_INDEX_TTL,
        coll,
        {"collMod": coll, "index": {"name": ix.name, ttl: want[ttl]}},
        index=ix.name,
        before=str(have[ttl]),
        after=str(want[ttl]),
    )

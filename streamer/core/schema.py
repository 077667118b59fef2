"""The declarative schema (``config/schema.yaml``) and the pure plan that applies it.

Why it exists: the service depends on validators and on indexes with exact names (unique
partial alerts, mirror indexes, TTLs). Creating them by hand drifts; creating them blindly
on start-up fails on the first index someone changed. So the schema is data, and applying
it is two steps kept apart on purpose:

* :func:`load_schema` / :func:`parse_schema` turn YAML into frozen dataclasses, rejecting
  malformed input with a :class:`~streamer.core.errors.SchemaError` (a configuration error,
  exit 2) that says where: ``file:line:column`` for a YAML syntax error,
  ``file: key.path: problem`` for its content;
* :func:`plan` compares that declaration with what ``listCollections`` and ``listIndexes``
  returned and says what to do. It does no I/O, so every rule below is unit-tested
  without a server; :mod:`streamer.runtime.bootstrap` does the reading and the applying.

Rules of the plan:

* a missing collection is created with its validator; missing indexes are created;
* a TTL that differs (``expireAfterSeconds``) and a validator, ``validationLevel`` or
  ``validationAction`` that differs are changed in place with ``collMod`` (no index
  rebuild, no window without the index);
* an existing index with the declared name, or with the declared key pattern, but other
  options is a *conflict*: reported with before/after, never dropped unless asked;
* an index nobody declared is reported as a note and kept: it is not drift.

Index documents are normalised before comparison, since mongod reports them in its own
shape: ``v``, ``ns``, ``background`` and the server-chosen ``textIndexVersion`` /
``2dsphereIndexVersion`` are ignored; a text index is reported as key
``{_fts: "text", _ftsx: 1}`` plus ``weights`` and language fields; numbers compare by
value (``1 == 1.0 == Int64(1)``); ``unique: false`` equals leaving it out.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import SchemaError
from .values import Decimal128
from .yamlfile import yaml_problem

__all__ = [
    "Action",
    "ActionKind",
    "CollectionSpec",
    "Conflict",
    "IndexSpec",
    "Note",
    "Plan",
    "Schema",
    "index_text",
    "load_schema",
    "normalize_index",
    "normalize_value",
    "parse_schema",
    "plan",
]

Document = dict[str, Any]
KeyPattern = tuple[tuple[str, Any], ...]

VALIDATION_LEVELS = frozenset({"off", "strict", "moderate"})
VALIDATION_ACTIONS = frozenset({"error", "warn"})
DEFAULT_LEVEL = "strict"
DEFAULT_ACTION = "error"
INDEX_TYPES = frozenset({"text", "2dsphere", "2d", "hashed"})
# Declarable index options and the check each value must pass.
BOOL_OPTIONS = frozenset({"unique", "sparse", "hidden"})
INDEX_OPTIONS = frozenset(
    {
        *BOOL_OPTIONS,
        "expireAfterSeconds",
        "partialFilterExpression",
        "collation",
        "weights",
        "default_language",
        "language_override",
    }
)
COLLECTION_KEYS = frozenset({"validator", "validationLevel", "validationAction", "indexes"})
# Fields of a listIndexes document that say nothing about what the index does.
IGNORED_INDEX_FIELDS = frozenset(
    {"v", "ns", "background", "textIndexVersion", "2dsphereIndexVersion", "key", "name"}
)
TEXT_DEFAULTS = {"default_language": "english", "language_override": "language"}


# -- the declaration ------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    """One declared index: its name, ordered key pattern and options as mongod takes them."""

    name: str
    keys: KeyPattern
    options: Mapping[str, Any] = field(default_factory=dict)

    def command_spec(self) -> Document:
        """The entry for ``createIndexes``' ``indexes`` array."""
        return {"key": dict(self.keys), "name": self.name, **self.options}


@dataclass(frozen=True)
class CollectionSpec:
    """One declared collection; ``validator is None`` means validation is not managed."""

    name: str
    validator: Mapping[str, Any] | None = None
    validation_level: str = DEFAULT_LEVEL
    validation_action: str = DEFAULT_ACTION
    indexes: tuple[IndexSpec, ...] = ()

    def validation_options(self) -> Document:
        if self.validator is None:
            return {}
        return {
            "validator": dict(self.validator),
            "validationLevel": self.validation_level,
            "validationAction": self.validation_action,
        }


@dataclass(frozen=True)
class Schema:
    collections: tuple[CollectionSpec, ...]

    def collection(self, name: str) -> CollectionSpec:
        for coll in self.collections:
            if coll.name == name:
                return coll
        raise KeyError(name)


def load_schema(path: str | Path) -> Schema:
    """Read and validate the schema file; :class:`SchemaError` (a configuration error,
    exit 2) if it is unreadable or malformed: ``file:line:column: invalid YAML: ...`` for
    a syntax error, ``file: key.path: problem`` for its content."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(
            f"cannot read schema file {path}: {exc.strerror or exc} (STREAMER_SCHEMA_PATH)"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SchemaError(yaml_problem(path, exc)) from None
    return parse_schema(data, source=str(path))


def parse_schema(data: Any, *, source: str = "schema") -> Schema:
    """Validate already-parsed YAML (a mapping with ``collections``) into a :class:`Schema`.

    A mistake is a :class:`SchemaError` ``source: key.path: problem``; list items are
    numbered from 0, as jq and yq number them (``collections.orders.indexes[0].keys``).
    """
    if not isinstance(data, Mapping):
        raise SchemaError(
            f"{source}: the top level must be a mapping with a 'collections' mapping, "
            f"not {_kind(data)}"
        )
    unknown = sorted(str(k) for k in data if k != "collections")
    if unknown:
        raise SchemaError(f"{source}: {unknown[0]}: unknown key (expected: collections)")
    if not isinstance(data.get("collections"), Mapping):
        raise SchemaError(
            f"{source}: collections: must be a mapping of collection names to their "
            f"declarations, not {_kind(data.get('collections'))}"
        )
    colls = tuple(
        _parse_collection(name, body, source) for name, body in data["collections"].items()
    )
    return Schema(colls)


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _problem(source: str, path: str, problem: str) -> SchemaError:
    return SchemaError(f"{source}: {path}: {problem}")


def _parse_collection(name: Any, body: Any, source: str) -> CollectionSpec:
    where = f"collections.{name}"
    if not isinstance(name, str) or not name or "$" in name or name.startswith("system."):
        raise _problem(source, where, f"invalid collection name {name!r}")
    body = {} if body is None else body
    if not isinstance(body, Mapping):
        raise _problem(source, where, f"must be a mapping, not {_kind(body)}")
    unknown = sorted(str(k) for k in body if k not in COLLECTION_KEYS)
    if unknown:
        raise _problem(
            source,
            f"{where}.{unknown[0]}",
            f"unknown key (expected one of {', '.join(sorted(COLLECTION_KEYS))})",
        )
    validator = body.get("validator")
    if validator is not None and (not isinstance(validator, Mapping) or not validator):
        raise _problem(source, f"{where}.validator", "must be a non-empty mapping")
    level = body.get("validationLevel", DEFAULT_LEVEL)
    action = body.get("validationAction", DEFAULT_ACTION)
    if level not in VALIDATION_LEVELS:
        raise _problem(
            source,
            f"{where}.validationLevel",
            f"{level!r} is not one of {', '.join(sorted(VALIDATION_LEVELS))}",
        )
    if action not in VALIDATION_ACTIONS:
        raise _problem(
            source,
            f"{where}.validationAction",
            f"{action!r} is not one of {', '.join(sorted(VALIDATION_ACTIONS))}",
        )
    if validator is None:
        for key in ("validationLevel", "validationAction"):
            if key in body:
                raise _problem(source, f"{where}.{key}", "needs a validator")
    raw_indexes = body.get("indexes")
    raw_indexes = [] if raw_indexes is None else raw_indexes
    if not isinstance(raw_indexes, list):
        raise _problem(source, f"{where}.indexes", f"must be a list, not {_kind(raw_indexes)}")
    indexes = tuple(
        _parse_index(raw, f"{where}.indexes[{i}]", source) for i, raw in enumerate(raw_indexes)
    )
    _check_unique_indexes(indexes, f"{where}.indexes", source)
    return CollectionSpec(
        name=name,
        validator=dict(validator) if validator is not None else None,
        validation_level=str(level),
        validation_action=str(action),
        indexes=indexes,
    )


def _check_unique_indexes(indexes: Sequence[IndexSpec], where: str, source: str) -> None:
    names: dict[str, int] = {}
    patterns: dict[KeyPattern, str] = {}
    for i, ix in enumerate(indexes):
        if ix.name in names:
            raise _problem(
                source,
                f"{where}[{i}].name",
                f"index {ix.name!r} is declared twice (also {where}[{names[ix.name]}])",
            )
        names[ix.name] = i
        pattern = normalize_index(ix.command_spec())[1]
        if pattern in patterns:
            raise _problem(
                source,
                f"{where}[{i}].keys",
                f"index {ix.name!r} has the same keys as index {patterns[pattern]!r}",
            )
        patterns[pattern] = ix.name


def _parse_index(raw: Any, where: str, source: str) -> IndexSpec:
    if not isinstance(raw, Mapping):
        raise _problem(source, where, f"an index must be a mapping, not {_kind(raw)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise _problem(source, f"{where}.name", "every index needs a non-empty string name")
    if name == "_id_":
        raise _problem(source, f"{where}.name", "the _id index is implicit and cannot be declared")
    keys = _parse_keys(raw.get("keys"), f"{where}.keys", source)
    options = {k: v for k, v in raw.items() if k not in ("name", "keys")}
    unknown = sorted(str(k) for k in options if k not in INDEX_OPTIONS)
    if unknown:
        raise _problem(
            source,
            f"{where}.{unknown[0]}",
            f"unknown index option (expected name, keys or one of "
            f"{', '.join(sorted(INDEX_OPTIONS))})",
        )
    for opt in sorted(BOOL_OPTIONS & options.keys()):
        if not isinstance(options[opt], bool):
            raise _problem(source, f"{where}.{opt}", "must be true or false")
    if "expireAfterSeconds" in options:
        ttl = options["expireAfterSeconds"]
        if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
            raise _problem(source, f"{where}.expireAfterSeconds", "must be a non-negative integer")
        if len(keys) != 1:
            raise _problem(source, f"{where}.keys", "a TTL index must have exactly one key")
    for opt in ("partialFilterExpression", "collation", "weights"):
        if opt in options and not isinstance(options[opt], Mapping):
            raise _problem(source, f"{where}.{opt}", "must be a mapping")
    return IndexSpec(name=name, keys=keys, options=options)


def _parse_keys(raw: Any, where: str, source: str) -> KeyPattern:
    if not isinstance(raw, list) or not raw:
        raise _problem(source, where, "must be a non-empty list of [field, direction] pairs")
    pairs: list[tuple[str, Any]] = []
    for i, entry in enumerate(raw):
        here = f"{where}[{i}]"
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise _problem(source, here, f"{entry!r} is not a [field, direction] pair")
        fld, direction = entry
        if not isinstance(fld, str) or not fld or fld.startswith("$"):
            raise _problem(source, here, f"invalid key field {fld!r}")
        if isinstance(direction, bool):
            raise _problem(
                source, here, f"key {fld!r}: the direction must be 1 or -1, not a boolean"
            )
        if direction not in (1, -1) and direction not in INDEX_TYPES:
            raise _problem(
                source,
                here,
                f"key {fld!r} has direction {direction!r}; "
                f"expected 1, -1 or one of {', '.join(sorted(INDEX_TYPES))}",
            )
        if any(fld == seen for seen, _ in pairs):
            raise _problem(source, here, f"key {fld!r} appears twice")
        pairs.append((fld, direction))
    return tuple(pairs)


# -- normalisation ------------------------------------------------------------------------


def normalize_value(value: Any) -> Any:
    """A comparable form: numbers by value (1 == 1.0 == Int64(1)), containers recursively.

    Mappings stay mappings (their comparison ignores field order, as mongod's catalog
    comparison of options does); integral numbers become ``int``, others ``float``.
    """
    if isinstance(value, bool) or value is None or isinstance(value, str | dt.datetime):
        return value
    if isinstance(value, Decimal128):
        dec = value.to_decimal()
        if dec.is_finite() and dec == dec.to_integral_value():
            return int(dec)
        return float(dec)
    if isinstance(value, int | float):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
            return value
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, Mapping):
        return {str(k): normalize_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize_value(v) for v in value]
    return value


def _text_key(key: Mapping[str, Any]) -> tuple[KeyPattern, dict[str, Any]]:
    """mongod's stored key for a text index and the weights it implies."""
    prefix: list[tuple[str, Any]] = []
    suffix: list[tuple[str, Any]] = []
    weights: dict[str, Any] = {}
    seen_text = False
    for fld, direction in key.items():
        if direction == "text":
            seen_text = True
            weights[fld] = 1
        elif seen_text:
            suffix.append((fld, direction))
        else:
            prefix.append((fld, direction))
    return (*prefix, ("_fts", "text"), ("_ftsx", 1), *suffix), weights


def normalize_index(doc: Mapping[str, Any]) -> tuple[str, KeyPattern, dict[str, Any]]:
    """(name, key pattern, options) of a listIndexes document or a declared index spec."""
    key = dict(doc.get("key") or {})
    options = {k: v for k, v in doc.items() if k not in IGNORED_INDEX_FIELDS}
    stored_text = key.get("_fts") == "text"  # listIndexes' shape of a text index
    if not stored_text and any(v == "text" for v in key.values()):
        pattern, weights = _text_key(key)
        options.setdefault("weights", weights)
    else:
        pattern = tuple(key.items())
    if "weights" in options:
        for opt, default in TEXT_DEFAULTS.items():
            options.setdefault(opt, default)
    for opt in BOOL_OPTIONS & options.keys():
        if options[opt] is False or options[opt] == 0:
            del options[opt]
        else:
            options[opt] = True
    norm_pattern = tuple((f, normalize_value(d)) for f, d in pattern)
    return str(doc.get("name", "")), norm_pattern, normalize_value(options)


def _to_text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=False, separators=(", ", ": "))


def index_text(doc: Mapping[str, Any]) -> str:
    """A one-line description of an index as mongod reports it, for before/after lines."""
    name, pattern, options = normalize_index(doc)
    parts = [f"key={_to_text(dict(pattern))}"]
    parts += [f"{k}={_to_text(v)}" for k, v in sorted(options.items())]
    return f"{name} " + " ".join(parts)


def _validation_text(options: Mapping[str, Any]) -> str:
    return (
        f"validator={_to_text(options.get('validator'))} "
        f"validationLevel={options.get('validationLevel')} "
        f"validationAction={options.get('validationAction')}"
    )


# -- the plan ----------------------------------------------------------------------------


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
        before=_validation_text(current),
        after=_validation_text(wanted),
    )


def _plan_indexes(
    coll: CollectionSpec, observed: Sequence[Mapping[str, Any]]
) -> tuple[list[Action], list[Conflict], list[Note]]:
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    current = [(doc, normalize_index(doc)) for doc in observed if doc.get("name") != "_id_"]
    claimed: set[str] = set()
    for ix in coll.indexes:
        spec = ix.command_spec()
        _, pattern, options = normalize_index(spec)
        by_name = [(d, n) for d, n in current if n[0] == ix.name]
        by_keys = [(d, n) for d, n in current if n[1] == pattern and n[0] != ix.name]
        claimed.update(n[0] for _, n in by_name + by_keys)
        if not by_name and not by_keys:
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
            _, (_, have_pattern, have_options) = by_name[0]
            if have_pattern == pattern and have_options == options:
                continue
            ttl = _ttl_change(coll.name, ix, have_pattern == pattern, have_options, options)
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
                existing=tuple(n[0] for _, n in by_name + by_keys),
                before="; ".join(index_text(d) for d, _ in by_name + by_keys),
                after=index_text(spec),
                declared=spec,
            )
        )
    notes = [
        Note(coll.name, f"undeclared index {coll.name}.{index_text(doc)} (kept)")
        for doc, n in current
        if n[0] not in claimed
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

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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

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
    The shape is checked by the pydantic models below; the first error they report
    becomes that one line.
    """
    try:
        model = _SchemaFile.model_validate(data)
    except ValidationError as exc:
        raise _schema_error(source, exc.errors()[0]) from None
    return Schema(
        tuple(_collection(name, body, source) for name, body in model.collections.items())
    )


# -- parsing: pydantic models whose validators raise this file's own one-line problems --


class _Problem(ValueError):
    """A problem found by a validator: its text, and the path below the validated value
    where it lies (``("keys", 1)``) when that is deeper than pydantic's location."""

    def __init__(self, problem: str, *at: str | int) -> None:
        super().__init__(problem)
        self.problem, self.at = problem, at


def _schema_error(source: str, error: ErrorDetails) -> SchemaError:
    """``source: key.path: problem`` from pydantic's first error."""
    cause = error.get("ctx", {}).get("error")
    at = cause.at if isinstance(cause, _Problem) else ()
    problem = cause.problem if isinstance(cause, _Problem) else error["msg"]
    path = ""
    for part in (*error["loc"], *at):
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path += f".{part}" if path else str(part)
    return SchemaError(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _one_of(allowed: frozenset[str]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        # A list, not the set: an unhashable value (a mapping) is just not one of them.
        if value not in sorted(allowed):
            raise _Problem(f"{value!r} is not one of {', '.join(sorted(allowed))}")
        return value

    return check


def _only(data: Any, allowed: frozenset[str], problem: str) -> Any:
    """The keys of a mapping are all known; the first unknown one (sorted) is the error."""
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise _Problem(problem, unknown[0])
    return data


def _mapping_check(problem: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if value is not None and not isinstance(value, Mapping):
            raise _Problem(problem)
        return value

    return check


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Problem("must be true or false")
    return value


def _key_pair(entry: Any) -> tuple[str, Any]:
    if not isinstance(entry, list | tuple) or len(entry) != 2:
        raise _Problem(f"{entry!r} is not a [field, direction] pair")
    fld, direction = entry
    if not isinstance(fld, str) or not fld or fld.startswith("$"):
        raise _Problem(f"invalid key field {fld!r}")
    if isinstance(direction, bool):
        raise _Problem(f"key {fld!r}: the direction must be 1 or -1, not a boolean")
    if direction not in (1, -1, *sorted(INDEX_TYPES)):
        raise _Problem(
            f"key {fld!r} has direction {direction!r}; "
            f"expected 1, -1 or one of {', '.join(sorted(INDEX_TYPES))}"
        )
    return fld, direction


def _key_list(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise _Problem("must be a non-empty list of [field, direction] pairs")
    return value


def _distinct_keys(pairs: KeyPattern) -> KeyPattern:
    fields = [fld for fld, _ in pairs]
    for i, fld in enumerate(fields):
        if fld in fields[:i]:
            raise _Problem(f"key {fld!r} appears twice", i)
    return pairs


def _index_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Problem("every index needs a non-empty string name")
    if value == "_id_":
        raise _Problem("the _id index is implicit and cannot be declared")
    return value


def _ttl(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Problem("must be a non-negative integer")
    return value


def _index_list(value: Any) -> Any:
    value = [] if value is None else value
    if not isinstance(value, list):
        raise _Problem(f"must be a list, not {_kind(value)}")
    return value


def _collections(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _Problem(
            f"must be a mapping of collection names to their declarations, not {_kind(value)}"
        )
    for name in value:
        if not isinstance(name, str) or not name or "$" in name or name.startswith("system."):
            raise _Problem(f"invalid collection name {name!r}", str(name))
    return value


KeyPair = Annotated[tuple[str, Any], BeforeValidator(_key_pair)]
Flag = Annotated[bool | None, BeforeValidator(_bool)]
Options = Annotated[Any, BeforeValidator(_mapping_check("must be a mapping"))]
_STRICT = ConfigDict(extra="forbid")  # unknown keys are caught first, by _known


class _Index(BaseModel):
    model_config = _STRICT

    name: Annotated[str, BeforeValidator(_index_name)] = Field(None, validate_default=True)
    keys: Annotated[
        tuple[KeyPair, ...], BeforeValidator(_key_list), AfterValidator(_distinct_keys)
    ] = Field(None, validate_default=True)
    unique: Flag = None
    sparse: Flag = None
    hidden: Flag = None
    expire_after_seconds: Annotated[int | None, BeforeValidator(_ttl)] = Field(
        None, alias="expireAfterSeconds"
    )
    partial_filter_expression: Options = Field(None, alias="partialFilterExpression")
    collation: Options = None
    weights: Options = None
    default_language: Any = None
    language_override: Any = None

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise _Problem(f"an index must be a mapping, not {_kind(data)}")
        return _only(
            data,
            INDEX_OPTIONS | {"name", "keys"},
            "unknown index option (expected name, keys or one of "
            f"{', '.join(sorted(INDEX_OPTIONS))})",
        )

    @model_validator(mode="after")
    def _ttl_has_one_key(self) -> _Index:
        if self.expire_after_seconds is not None and len(self.keys) != 1:
            raise _Problem("a TTL index must have exactly one key", "keys")
        return self

    def spec(self) -> IndexSpec:
        options = self.model_dump(by_alias=True, exclude_unset=True, exclude={"name", "keys"})
        return IndexSpec(name=self.name, keys=self.keys, options=options)


class _Collection(BaseModel):
    model_config = _STRICT

    validator: Any = None
    validation_level: Annotated[str, BeforeValidator(_one_of(VALIDATION_LEVELS))] = Field(
        DEFAULT_LEVEL, alias="validationLevel"
    )
    validation_action: Annotated[str, BeforeValidator(_one_of(VALIDATION_ACTIONS))] = Field(
        DEFAULT_ACTION, alias="validationAction"
    )
    indexes: Annotated[tuple[_Index, ...], BeforeValidator(_index_list)] = ()

    @field_validator("validator", mode="before")
    @classmethod
    def _validator(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, Mapping) or not value):
            raise _Problem("must be a non-empty mapping")
        return value

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        data = {} if data is None else data  # `name:` alone declares a bare collection
        if not isinstance(data, Mapping):
            raise _Problem(f"must be a mapping, not {_kind(data)}")
        return _only(
            data,
            COLLECTION_KEYS,
            f"unknown key (expected one of {', '.join(sorted(COLLECTION_KEYS))})",
        )

    @model_validator(mode="after")
    def _validation_needs_a_validator(self) -> _Collection:
        if self.validator is None:
            for fld in ("validation_level", "validation_action"):
                if fld in self.model_fields_set:
                    alias = type(self).model_fields[fld].alias or fld
                    raise _Problem("needs a validator", alias)
        return self


class _SchemaFile(BaseModel):
    model_config = _STRICT

    collections: Annotated[dict[str, _Collection], BeforeValidator(_collections)] = Field(
        None, validate_default=True
    )

    @model_validator(mode="before")
    @classmethod
    def _known(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            raise _Problem(
                f"the top level must be a mapping with a 'collections' mapping, not {_kind(data)}"
            )
        return _only(data, frozenset({"collections"}), "unknown key (expected: collections)")


def _collection(name: str, body: _Collection, source: str) -> CollectionSpec:
    indexes = tuple(ix.spec() for ix in body.indexes)
    _check_unique_indexes(indexes, f"collections.{name}.indexes", source)
    return CollectionSpec(
        name=name,
        validator=dict(body.validator) if body.validator is not None else None,
        validation_level=body.validation_level,
        validation_action=body.validation_action,
        indexes=indexes,
    )


def _problem(source: str, path: str, problem: str) -> SchemaError:
    return SchemaError(f"{source}: {path}: {problem}")


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

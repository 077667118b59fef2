"""The declarative schema (``config/schema.yaml``): loaded, checked, declared.

Why it exists: the service depends on validators and on indexes with exact names (unique
partial alerts, mirror indexes, TTLs). Creating them by hand drifts; creating them blindly
on start-up fails on the first index someone changed. So the schema is data, and applying
it is two steps kept apart on purpose:

* :func:`load_schema` / :func:`parse_schema` turn YAML into frozen dataclasses, rejecting
  malformed input with a :class:`~streamer.core.errors.SchemaError` (a configuration error,
  exit 2) that says where: ``file:line:column`` for a YAML syntax error,
  ``file: key.path: problem`` for its content;
* :func:`streamer.core.schema_plan.plan` compares that declaration with what
  ``listCollections`` and ``listIndexes`` returned and says what to do (no I/O);
  :mod:`streamer.runtime.bootstrap` does the reading and the applying.

The rules of applying it are in :mod:`streamer.core.schema_plan`; index documents are
compared in the shape of :mod:`streamer.core.index_shapes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

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
from .index_shapes import BOOL_OPTIONS, KeyPattern, normalize_index
from .yamlfile import yaml_problem

__all__ = ["CollectionSpec", "IndexSpec", "Schema", "load_schema", "parse_schema"]

Document = dict[str, Any]

VALIDATION_LEVELS = frozenset({"off", "strict", "moderate"})
VALIDATION_ACTIONS = frozenset({"error", "warn"})
DEFAULT_LEVEL = "strict"
DEFAULT_ACTION = "error"
INDEX_TYPES = frozenset({"text", "2dsphere", "2d", "hashed"})
# Declarable index options and the check each value must pass.
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

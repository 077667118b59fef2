"""The catalog's shared steps: create a collection, compile its validator, add an index.

The catalog commands (:mod:`.commands_catalog`), the engine (a write that creates its
collection), ``$merge``/``$out`` and the data dir's replay (:mod:`.persistence`) all
create collections and indexes the same way, so these steps sit below all of them. Each
takes a :class:`CatalogHost`, which the engine is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bson.timestamp import Timestamp

from .errors import MongoError
from .matching import compile_filter
from .storage import Collection, Index
from .validator_errors import CollectionValidator

COLL_OPTIONS = (
    "validator",
    "validationLevel",
    "validationAction",
    "changeStreamPreAndPostImages",
    "capped",
    "size",
    "max",
    "collation",
    "expireAfterSeconds",
    "clusteredIndex",
    "timeseries",
)


class CatalogHost(Protocol):
    """Where collections live, and the oplog a logged catalog change goes to."""

    @property
    def databases(self) -> dict[str, dict[str, Collection]]: ...

    def append_command(
        self,
        ns: str,
        cmd: dict[str, Any],
        coll: Collection | None,
        *,
        pre: dict[str, Any] | None = None,
    ) -> Timestamp: ...


def check_name(db: str, name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith(".") or "$" in name or "\0" in name:
        raise MongoError(73, f"Invalid collection name: {db}.{name}")
    return name


def compile_validator(coll: Collection) -> None:
    validator = coll.options.get("validator")
    if not validator:
        coll.validator = None
        return
    coll.validator = CollectionValidator(
        validator,
        level=coll.options.get("validationLevel", "strict"),
        action=coll.options.get("validationAction", "error"),
    )


def build_index(spec: Mapping[str, Any]) -> Index:
    partial = spec.get("partialFilterExpression")
    matcher = None
    if partial is not None:
        matcher = compile_filter(partial)
    return Index(spec, matcher)


def create_collection(
    engine: CatalogHost, db: str, name: str, options: Mapping[str, Any], *, log: bool = True
) -> Collection:
    check_name(db, name)
    coll = Collection(db, name, {k: options[k] for k in COLL_OPTIONS if k in options})
    compile_validator(coll)
    engine.databases.setdefault(db, {})[name] = coll
    if log:
        cmd = {"create": name, **coll.options}
        engine.append_command(f"{db}.$cmd", cmd, coll)
    return coll


def _same_index(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    ignore = {"v", "name"}
    return {k: v for k, v in a.items() if k not in ignore} == {
        k: v for k, v in b.items() if k not in ignore
    }


def add_index(
    engine: CatalogHost, coll: Collection, spec: dict[str, Any], *, log: bool = True
) -> bool:
    """Create one index; False if an identical one exists. mongod's conflicts raise 85/86."""
    for existing in coll.indexes.values():
        if existing.name == spec["name"]:
            if _same_index(existing.spec, spec):
                return False
            raise MongoError(
                86,
                "An existing index has the same name as the requested index. "
                f"When index names are not specified, they are auto generated "
                f"and can cause conflicts. Please refer to our documentation. "
                f"Requested index: {spec}, existing index: {existing.spec}",
            )
        if existing.spec["key"] == spec["key"] and existing.spec.get("collation") == spec.get(
            "collation"
        ):
            if _same_index(existing.spec, spec):
                return False
            raise MongoError(
                85,
                f"An equivalent index already exists with the same name but "
                f"different options. Requested index: {spec}, existing index: "
                f"{existing.spec}"
                if existing.name == spec["name"]
                else f"Index already exists with a different name: {existing.name}",
            )
    coll.add_index(build_index(spec))
    if log:
        engine.append_command(f"{coll.db}.$cmd", {"createIndexes": coll.name, "spec": spec}, coll)
    return True

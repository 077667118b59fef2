"""Collections and their indexes.

Documents live in a dict keyed by the canonical form of ``_id``; every secondary index
maps the canonical value of its first field to the ids holding it (enough to answer
equality reads in O(1)), and a unique index also maps its full key to the one id that
owns it. Writes cost O(number of indexes), whatever the collection size.
"""

from __future__ import annotations

import itertools
import uuid as _uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from typing import Any

from .bsonutil import MISSING, canonical, get_path
from .errors import MongoError

IdKey = Hashable
Matcher = Callable[[Mapping[str, Any]], bool]

# Options that listIndexes reports back (src/mongo/db/catalog/index_key_validate.cpp).
_INDEX_OPTIONS = (
    "unique",
    "background",  # ignored since 4.2, but kept in the spec as mongod does
    "sparse",
    "partialFilterExpression",
    "expireAfterSeconds",
    "hidden",
    "collation",
    "weights",
    "default_language",
    "language_override",
    "textIndexVersion",
    "2dsphereIndexVersion",
    "wildcardProjection",
)


def _key_values(doc: Mapping[str, Any], path: str) -> list[Any]:
    """The values an index stores for one field: arrays fan out (multikey), missing is null."""
    value = get_path(doc, path)
    if value is MISSING:
        parts = path.split(".")
        # A path through an array of subdocuments fans out too ("items.sku").
        for i in range(1, len(parts)):
            head = get_path(doc, ".".join(parts[:i]))
            if isinstance(head, list):
                rest = ".".join(parts[i:])
                found = [get_path(e, rest) for e in head if isinstance(e, Mapping)]
                found = [v for v in found if v is not MISSING]
                return list(
                    itertools.chain.from_iterable(
                        v if isinstance(v, list) and v else [v] for v in found
                    )
                ) or [None]
        return [None]
    if isinstance(value, list):
        return list(value) if value else [MISSING]  # an empty array indexes as undefined
    return [value]


class Index:
    """One index: its spec as listIndexes shows it and the maps that serve lookups."""

    __slots__ = (
        "by_first",
        "by_full",
        "expire_after",
        "fields",
        "name",
        "partial",
        "sparse",
        "spec",
        "text",
        "unique",
    )

    def __init__(self, spec: Mapping[str, Any], partial: Matcher | None) -> None:
        self.spec: dict[str, Any] = dict(spec)
        self.name: str = spec["name"]
        key: Mapping[str, Any] = spec["key"]
        self.text = any(v == "text" for v in key.values())
        self.fields: list[str] = [f for f, v in key.items() if v != "text"] if not self.text else []
        self.unique = bool(spec.get("unique")) and self.name != "_id_"
        self.sparse = bool(spec.get("sparse"))
        self.partial = partial
        exp = spec.get("expireAfterSeconds")
        self.expire_after: float | None = float(exp) if exp is not None else None
        self.by_first: dict[Hashable, set[IdKey]] = {}
        self.by_full: dict[Hashable, IdKey] = {}

    @property
    def key_pattern(self) -> dict[str, Any]:
        return dict(self.spec["key"])

    def covers(self, doc: Mapping[str, Any]) -> bool:
        if self.partial is not None and not self.partial(doc):
            return False
        return not (self.sparse and all(get_path(doc, f) is MISSING for f in self.fields))

    def first_keys(self, doc: Mapping[str, Any]) -> set[Hashable]:
        if not self.fields or not self.covers(doc):
            return set()
        return {canonical(None if v is MISSING else v) for v in _key_values(doc, self.fields[0])}

    def full_keys(self, doc: Mapping[str, Any]) -> list[tuple[Hashable, tuple[Any, ...]]]:
        """(hashable key, raw values) per index entry of the document."""
        if not self.fields or not self.covers(doc):
            return []
        per_field = [_key_values(doc, f) for f in self.fields]
        out: list[tuple[Hashable, tuple[Any, ...]]] = []
        for combo in itertools.product(*per_field):
            raw = tuple(None if v is MISSING else v for v in combo)
            out.append((tuple(canonical(v) for v in raw), raw))
        return out

    def add(self, idk: IdKey, doc: Mapping[str, Any]) -> None:
        for k in self.first_keys(doc):
            self.by_first.setdefault(k, set()).add(idk)
        if self.unique:
            for full, _raw in self.full_keys(doc):
                self.by_full[full] = idk

    def remove(self, idk: IdKey, doc: Mapping[str, Any]) -> None:
        for k in self.first_keys(doc):
            ids = self.by_first.get(k)
            if ids is not None:
                ids.discard(idk)
                if not ids:
                    del self.by_first[k]
        if self.unique:
            for full, _raw in self.full_keys(doc):
                if self.by_full.get(full) == idk:
                    del self.by_full[full]

    def conflict(
        self,
        idk: IdKey,
        doc: Mapping[str, Any],
        overlay: TxnVersions | None = None,
    ) -> tuple[Any, ...] | None:
        """The raw key values that another document already holds in this unique index.

        ``overlay`` is a transaction's own versions of this collection's documents: a
        committed holder the transaction has since changed or deleted no longer holds
        the key, and another document the transaction wrote may hold it.
        """
        if not self.unique:
            return None
        # Which of the transaction's versions hold each key: a look-up, not a pass over
        # every version (a batch's transaction checks each of its writes, twice).
        holders = overlay.holders(self) if overlay is not None else None
        for full, raw in self.full_keys(doc):
            owner = self.by_full.get(full, idk)
            if owner != idk and not (
                overlay is not None and owner in overlay and not self._holds(overlay[owner], full)
            ):
                return raw
            if holders is not None and any(other != idk for other in holders.get(full, ())):
                return raw
        return None

    def _holds(self, doc: Mapping[str, Any] | None, full: Hashable) -> bool:
        return doc is not None and any(f == full for f, _ in self.full_keys(doc))


class TxnVersions(dict[IdKey, dict[str, Any] | None]):
    """A transaction's versions of one collection's documents (None: deleted), keyed by
    canonical ``_id``, with, per unique index, the ids whose version holds each key.

    The key maps are built on a unique check's first look at an index and kept up to
    date as versions are set, so a check costs the keys of the document checked, not a
    pass over every version (which made a batch's transaction quadratic in its size).
    Versions are never changed in place (each write stores a new document), so a key
    map stays true between writes.
    """

    __slots__ = ("_holders",)

    def __init__(self) -> None:
        super().__init__()
        self._holders: dict[Index, dict[Hashable, set[IdKey]]] = {}

    def holders(self, index: Index) -> dict[Hashable, set[IdKey]]:
        """Full key -> the ids whose version holds it in ``index``."""
        found = self._holders.get(index)
        if found is None:
            found = self._holders[index] = {}
            for idk, doc in self.items():
                _hold(found, index, idk, doc)
        return found

    def __setitem__(self, idk: IdKey, doc: dict[str, Any] | None) -> None:
        old = self.get(idk)
        for index, keys in self._holders.items():
            if old is not None:
                for full, _raw in index.full_keys(old):
                    ids = keys.get(full)
                    if ids is not None:
                        ids.discard(idk)
                        if not ids:
                            del keys[full]
            _hold(keys, index, idk, doc)
        super().__setitem__(idk, doc)


def _hold(
    keys: dict[Hashable, set[IdKey]], index: Index, idk: IdKey, doc: Mapping[str, Any] | None
) -> None:
    if doc is not None:
        for full, _raw in index.full_keys(doc):
            keys.setdefault(full, set()).add(idk)


def duplicate_key_error(ns: str, index: Index, raw: tuple[Any, ...]) -> MongoError:
    """E11000 as mongod words it, with keyPattern and keyValue (4.4+)."""
    key_value = dict(zip(index.fields, raw, strict=True))
    shown = ", ".join(f"{f}: {v!r}" for f, v in key_value.items())
    return MongoError(
        11000,
        f"E11000 duplicate key error collection: {ns} index: {index.name} dup key: {{ {shown} }}",
        extra={"keyPattern": index.key_pattern, "keyValue": key_value},
    )


class Collection:
    """A collection's documents, indexes and options."""

    def __init__(
        self,
        db: str,
        name: str,
        options: Mapping[str, Any] | None = None,
        uuid: _uuid.UUID | None = None,
    ) -> None:
        self.db = db
        self.name = name
        self.options: dict[str, Any] = dict(options or {})
        self.uuid = uuid or _uuid.uuid4()
        self.validator: Any = None  # a compiled jsonschema.CollectionValidator, set by the catalog
        self.docs: dict[IdKey, dict[str, Any]] = {}
        self.indexes: dict[str, Index] = {
            "_id_": Index({"v": 2, "key": {"_id": 1}, "name": "_id_"}, None)
        }

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.name}"

    @property
    def pre_images_enabled(self) -> bool:
        opt = self.options.get("changeStreamPreAndPostImages")
        return bool(opt and opt.get("enabled"))

    def __len__(self) -> int:
        return len(self.docs)

    def get(self, idk: IdKey) -> dict[str, Any] | None:
        return self.docs.get(idk)

    def check_unique(
        self,
        idk: IdKey,
        doc: Mapping[str, Any],
        *,
        is_insert: bool,
        overlay: TxnVersions | None = None,
    ) -> None:
        if is_insert and idk in self.docs:
            raise duplicate_key_error(self.ns, self.indexes["_id_"], (doc["_id"],))
        for index in self.indexes.values():
            raw = index.conflict(idk, doc, overlay)
            if raw is not None:
                raise duplicate_key_error(self.ns, index, raw)

    def put(self, idk: IdKey, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Store a document (insert or replace) and maintain indexes; returns the old one."""
        old = self.docs.get(idk)
        secondary = [ix for ix in self.indexes.values() if ix.name != "_id_"]
        if old is not None:
            for ix in secondary:
                ix.remove(idk, old)
        self.docs[idk] = doc
        for ix in secondary:
            ix.add(idk, doc)
        return old

    def remove(self, idk: IdKey) -> dict[str, Any] | None:
        old = self.docs.pop(idk, None)
        if old is not None:
            for ix in self.indexes.values():
                if ix.name != "_id_":
                    ix.remove(idk, old)
        return old

    def add_index(self, index: Index) -> None:
        """Build an index over the current documents; fails with 11000 on duplicates."""
        for idk, doc in self.docs.items():
            raw = index.conflict(idk, doc)
            if raw is not None:
                index.by_first.clear()
                index.by_full.clear()
                raise duplicate_key_error(self.ns, index, raw)
            index.add(idk, doc)
        self.indexes[index.name] = index

    def candidate_ids(self, equalities: Mapping[str, list[Any]]) -> Iterable[IdKey] | None:
        """Ids that may match, from the _id or a usable index; None means scan everything."""
        if "_id" in equalities:
            return [canonical(v) for v in equalities["_id"]]
        for index in self.indexes.values():
            if not index.fields or index.partial is not None or index.sparse:
                continue
            values = equalities.get(index.fields[0])
            if values is None:
                continue
            ids: set[IdKey] = set()
            for v in values:
                ids |= self.by_first_lookup(index, v)
            return ids
        return None

    @staticmethod
    def by_first_lookup(index: Index, value: Any) -> set[IdKey]:
        found = set(index.by_first.get(canonical(value), ()))
        if isinstance(value, list):
            # An array value matches the whole array or any of its elements being stored.
            for v in value:
                found |= index.by_first.get(canonical(v), set())
        return found

    def iter_candidates(self, equalities: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
        ids = self.candidate_ids(equalities)
        if ids is None:
            yield from list(self.docs.values())
            return
        seen: set[IdKey] = set()
        for idk in ids:
            if idk in seen:
                continue
            seen.add(idk)
            doc = self.docs.get(idk)
            if doc is not None:
                yield doc

    def index_specs(self) -> list[dict[str, Any]]:
        return [dict(ix.spec) for ix in self.indexes.values()]


def normalize_index_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec as mongod stores it: v, key, name, then the options it keeps."""
    out: dict[str, Any] = {
        "v": int(spec.get("v", 2)),
        "key": dict(spec["key"]),
        "name": spec["name"],
    }
    for opt in _INDEX_OPTIONS:
        if opt in spec:
            out[opt] = spec[opt]
    if any(v == "text" for v in spec["key"].values()):
        # mongod rewrites text keys to {_fts: "text", _ftsx: 1} and records the weights.
        weights = dict(spec.get("weights") or {f: 1 for f, v in spec["key"].items() if v == "text"})
        prefix = {f: v for f, v in spec["key"].items() if v != "text"}
        out["key"] = {**prefix, "_fts": "text", "_ftsx": 1}
        out["weights"] = weights
        out.setdefault("default_language", spec.get("default_language", "english"))
        out.setdefault("language_override", spec.get("language_override", "language"))
        out.setdefault("textIndexVersion", 3)
    return out


def default_index_name(key: Mapping[str, Any]) -> str:
    return "_".join(f"{f}_{v}" for f, v in key.items())

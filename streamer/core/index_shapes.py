"""Index and validation options in a comparable shape, and their one-line text.

mongod reports an index in its own shape (listIndexes): ``v``, ``ns``, ``background``
and the server-chosen ``textIndexVersion`` / ``2dsphereIndexVersion`` say nothing about
what it does; a text index comes back as key ``{_fts: "text", _ftsx: 1}`` plus
``weights`` and language fields; numbers compare by value (``1 == 1.0 == Int64(1)``);
``unique: false`` equals leaving it out. Both a declared index and a reported one are
normalised here before :mod:`streamer.core.schema` checks a declaration and
:mod:`streamer.core.schema_plan` compares it with the database.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

from .values import Decimal128

KeyPattern = tuple[tuple[str, Any], ...]

# Index options whose value is a flag: false (or 0) is the same as leaving it out.
BOOL_OPTIONS = frozenset({"unique", "sparse", "hidden"})
# Fields of a listIndexes document that say nothing about what the index does.
IGNORED_INDEX_FIELDS = frozenset(
    {"v", "ns", "background", "textIndexVersion", "2dsphereIndexVersion", "key", "name"}
)
TEXT_DEFAULTS = {"default_language": "english", "language_override": "language"}


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


def to_text(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=False, separators=(", ", ": "))


def index_text(doc: Mapping[str, Any]) -> str:
    """A one-line description of an index as mongod reports it, for before/after lines."""
    name, pattern, options = normalize_index(doc)
    parts = [f"key={to_text(dict(pattern))}"]
    parts += [f"{k}={to_text(v)}" for k, v in sorted(options.items())]
    return f"{name} " + " ".join(parts)


def validation_text(options: Mapping[str, Any]) -> str:
    return (
        f"validator={to_text(options.get('validator'))} "
        f"validationLevel={options.get('validationLevel')} "
        f"validationAction={options.get('validationAction')}"
    )

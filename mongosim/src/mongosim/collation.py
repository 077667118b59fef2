"""Collation, as far as mongosim goes: case- and accent-insensitive string comparison.

A ``collation`` with ``strength`` 1 (base letters) or 2 (base letters and accents) makes
string comparisons ignore case (and, at strength 1, accents), which is what applications
ask collation for in practice (manual: "Collation", strength levels). mongosim folds
strings on both sides of a comparison; it has no ICU, so locale-specific orderings,
``numericOrdering``, ``alternate`` and ``caseFirst`` are not modelled: every locale
compares as ``simple`` beyond case and accents.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from .errors import MongoError

Fold = Callable[[Any], Any]


def folder(collation: Any) -> Fold | None:
    """A function folding the strings inside a value, or None for binary comparison."""
    if collation is None:
        return None
    if not isinstance(collation, Mapping) or "locale" not in collation:
        raise MongoError(40414, "BSON field 'collation.locale' is missing but a required field")
    if collation["locale"] == "simple":
        return None
    strength = int(collation.get("strength", 3))
    if strength >= 3:
        return None
    strip_accents = strength == 1

    def fold_string(text: str) -> str:
        text = text.casefold()
        if strip_accents:
            text = "".join(
                c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)
            )
        return text

    def fold(value: Any) -> Any:
        if isinstance(value, str):
            return fold_string(value)
        if isinstance(value, Mapping):
            return {k: fold(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fold(v) for v in value]
        return value

    return fold


def collated(
    compile_filter: Callable[[Mapping[str, Any]], Callable[[Any], bool]],
    query: Mapping[str, Any],
    collation: Any,
) -> Callable[[Any], bool]:
    """``compile_filter(query)``, comparing strings under ``collation``."""
    fold = folder(collation)
    if fold is None:
        return compile_filter(query)
    matcher = compile_filter(fold(query))
    return lambda doc: matcher(fold(doc))

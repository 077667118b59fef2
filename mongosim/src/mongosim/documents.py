"""A document on its way in: ``_id`` first and valid, then the collection's validator.

Every write that stores a new document (insert, an upsert, ``$merge``/``$out``) prepares
it the same way, so these steps sit below the commands and stages that call them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bson.objectid import ObjectId

from .errors import MongoError
from .storage import Collection

log = logging.getLogger("mongosim")


def prepare_insert(doc: Mapping[str, Any]) -> dict[str, Any]:
    """mongod puts ``_id`` first and generates an ObjectId when it is missing.

    Since 5.0 field names may start with '$' or contain '.', except inside ``_id``
    (src/mongo/db/storage/storage_validation.cpp: DollarPrefixedFieldName, 52)."""
    if "_id" not in doc:
        return {"_id": ObjectId(), **doc}
    _check_id(doc["_id"])
    if next(iter(doc)) == "_id":
        return dict(doc)
    return {"_id": doc["_id"], **{k: v for k, v in doc.items() if k != "_id"}}


def _check_id(value: Any) -> None:
    if isinstance(value, list):
        raise MongoError(53, "The '_id' value cannot be of type array")
    if isinstance(value, Mapping):
        for key in value:
            if key.startswith("$"):
                raise MongoError(
                    52,
                    f"_id fields may not contain '$'-prefixed fields: {key} is not valid for "
                    "storage.",
                )


def check_document(
    coll: Collection, new: dict[str, Any], old: dict[str, Any] | None, cmd: Mapping[str, Any]
) -> None:
    """Apply the collection's validator (unless bypassed): 121 on error, a log on warn."""
    validator = coll.validator
    if validator is None or cmd.get("bypassDocumentValidation"):
        return
    details = validator.check(new, old)
    if details is None:
        return
    if validator.action == "warn":
        log.warning("Document would fail validation: %s %s", coll.ns, details)
        return
    raise validator.error(new.get("_id"), details)

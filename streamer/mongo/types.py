"""The driver's value and request types the service uses, re-exported from the seam.

BSON values (Decimal128, Int64, Timestamp, ObjectId, Regex) are plain data and the pure
core computes with them; the write requests (InsertOne, ReplaceOne, DeleteOne,
UpdateOne) are what :meth:`streamer.mongo.Mongo.bulk_write` takes. Importing them from
here keeps ``pymongo`` and ``bson`` imports inside :mod:`streamer.mongo`.
"""

from __future__ import annotations

from bson import Decimal128, Int64, ObjectId, Regex, Timestamp
from bson import encode as encode_bson
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne

__all__ = [
    "Decimal128",
    "DeleteOne",
    "InsertOne",
    "Int64",
    "ObjectId",
    "Regex",
    "ReplaceOne",
    "Timestamp",
    "UpdateOne",
    "encode_bson",
]

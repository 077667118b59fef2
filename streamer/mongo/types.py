"""The driver's write requests, re-exported from the seam.

The write requests (InsertOne, ReplaceOne, DeleteOne, UpdateOne) are what
:meth:`streamer.mongo.client.Mongo.bulk_write` takes. Importing them from here keeps
``pymongo`` imports inside :mod:`streamer.mongo`. The BSON values (Decimal128, Int64,
Timestamp, ...) are plain data the pure core computes with: :mod:`streamer.core.values`.
"""

from __future__ import annotations

from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne

__all__ = ["DeleteOne", "InsertOne", "ReplaceOne", "UpdateOne"]

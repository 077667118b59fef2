"""The BSON value types the pure core computes with, from ``bson`` alone.

Decimal128, Int64, Timestamp, ObjectId and Regex are plain data: ``bson`` is the
driver's codec, with no client, network or event loop behind it (importing it loads
neither ``pymongo`` nor ``motor``). This module is the one place outside
:mod:`streamer.mongo` that may import it (an import-linter contract says so), so the
core reaches these values without reaching the driver door. The write requests the
client takes are in :mod:`streamer.mongo.types`.
"""

from __future__ import annotations

from bson import Decimal128, Int64, ObjectId, Regex, Timestamp
from bson import encode as encode_bson

__all__ = ["Decimal128", "Int64", "ObjectId", "Regex", "Timestamp", "encode_bson"]

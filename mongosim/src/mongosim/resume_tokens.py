"""Resume tokens: ``{_data: <hex>}`` naming a position in the oplog.

mongod's tokens are KeyString-encoded and opaque to drivers; ours keep the same outer
shape (a ``_data`` hex string starting with 0x82 followed by the cluster time, as
mongod's v2 tokens do) and encode what resuming needs: the cluster time, the position
inside a transaction, whether the token is a high-water mark (no event: "everything up
to this time") and whether it is an invalidate event (which only ``startAfter`` may pass).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson.timestamp import Timestamp

from .errors import MongoError

_PREFIX = "82"
_HWM_INDEX = 0xFFFFFFFF
_LENGTH = len(_PREFIX) + 8 + 8 + 2 + 8 + 2


@dataclass(frozen=True, slots=True)
class ResumeToken:
    ts: Timestamp
    txn_index: int = 0
    high_water_mark: bool = False
    from_invalidate: bool = False

    @property
    def position(self) -> tuple[int, int, int]:
        """Sort key of the oplog position the token names (HWM: after every entry at ts)."""
        index = _HWM_INDEX if self.high_water_mark else self.txn_index
        return (self.ts.time, self.ts.inc, index)

    def encode(self) -> dict[str, str]:
        kind = 0 if self.high_water_mark else 1
        index = _HWM_INDEX if self.high_water_mark else self.txn_index
        data = (
            f"{_PREFIX}{self.ts.time:08X}{self.ts.inc:08X}{kind:02X}{index:08X}"
            f"{int(self.from_invalidate):02X}"
        )
        return {"_data": data}


def event_token(ts: Timestamp, txn_index: int) -> dict[str, str]:
    """``ResumeToken(ts, txn_index).encode()``, without building the token first (one
    per change event)."""
    return {"_data": f"{_PREFIX}{ts.time:08X}{ts.inc:08X}01{txn_index:08X}00"}


def high_water_mark(ts: Timestamp) -> dict[str, str]:
    return ResumeToken(ts, high_water_mark=True).encode()


def decode(token: Any) -> ResumeToken:
    """Parse a client-supplied token; malformed ones fail with 260 InvalidResumeToken."""
    if not isinstance(token, Mapping) or not isinstance(token.get("_data"), str):
        raise MongoError(
            260,
            "Bad resume token: _data of missing or of wrong type. Expected "
            "string, got " + repr(token),
        )
    data = token["_data"]
    try:
        if len(data) != _LENGTH or not data.startswith(_PREFIX):
            raise ValueError(data)
        time, inc = int(data[2:10], 16), int(data[10:18], 16)
        kind, index, invalidate = int(data[18:20], 16), int(data[20:28], 16), int(data[28:30], 16)
    except ValueError:
        raise MongoError(260, f"Failed to decode resume token: {data!r}") from None
    if kind not in (0, 1) or invalidate not in (0, 1):
        raise MongoError(260, f"Invalid resume token: {data!r}")
    return ResumeToken(Timestamp(time, inc), 0 if kind == 0 else index, kind == 0, bool(invalidate))

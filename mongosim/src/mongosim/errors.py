"""Server-side errors, shaped as mongod reports them.

Every failure inside mongosim is a :class:`MongoError`; the server turns it into the
``{ok: 0, errmsg, code, codeName, errorLabels?, ...}`` reply that drivers expect.
Codes and names come from the one table in ``codes.py`` (the server's
``src/mongo/base/error_codes.yml``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .codes import code_name as _code_name


class MongoError(Exception):
    """A command failure with mongod's code, codeName, labels and extra reply fields."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        code_name: str | None = None,
        labels: Iterable[str] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.code_name = code_name or _code_name(code)
        self.labels = list(labels)
        self.extra: dict[str, Any] = dict(extra or {})

    def to_reply(self) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "ok": 0.0,
            "errmsg": self.message,
            "code": self.code,
            "codeName": self.code_name,
        }
        reply.update(self.extra)
        if self.labels:
            reply["errorLabels"] = list(self.labels)
        return reply

    def __repr__(self) -> str:
        return f"MongoError({self.code}, {self.message!r})"


class CloseConnection(Exception):
    """Close the client's connection without a reply (a fail point's closeConnection)."""


class WriteError(MongoError):
    """A per-document write failure: reported in ``writeErrors`` rather than as ``ok: 0``."""


def bad_value(message: str) -> MongoError:
    return MongoError(2, message)


def failed_to_parse(message: str) -> MongoError:
    return MongoError(9, message)


def type_mismatch(message: str) -> MongoError:
    return MongoError(14, message)

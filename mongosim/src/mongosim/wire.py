"""The wire-protocol codec: OP_MSG, legacy OP_QUERY commands and their replies. No I/O.

Sources: "OP_MSG" spec (mongodb/specifications source/message/OP_MSG.md) and the manual's
"MongoDB Wire Protocol" page (header, OP_QUERY, OP_REPLY, OP_COMPRESSED layouts).
Framing errors raise :class:`ProtocolError` (the server then closes the connection, as mongod
does); errors in a well-framed command raise ``MongoError`` (answered with an error reply).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import bson
import crc32c

from .bsonutil import CODEC_OPTIONS
from .errors import MongoError

OP_REPLY: Final = 1
OP_QUERY: Final = 2004
OP_COMPRESSED: Final = 2012
OP_MSG: Final = 2013

MAX_MESSAGE_SIZE: Final = 48_000_000
MAX_BSON_SIZE: Final = 16 * 1024 * 1024
HEADER_SIZE: Final = 16

# OP_MSG flagBits.
CHECKSUM_PRESENT: Final = 1 << 0
MORE_TO_COME: Final = 1 << 1
EXHAUST_ALLOWED: Final = 1 << 16
_REQUIRED_BITS: Final = 0xFFFF  # unknown bits 0-15 must be rejected, 16-31 ignored
# OP_REPLY responseFlags: mongod always sets AwaitCapable.
AWAIT_CAPABLE: Final = 8

_HEADER = struct.Struct("<iiii")
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_REPLY_PREFIX = struct.Struct("<iqii")  # responseFlags, cursorID, startingFrom, numberReturned


class ProtocolError(Exception):
    """A malformed message: the connection must be closed."""


@dataclass(slots=True)
class Header:
    length: int
    request_id: int
    response_to: int
    op_code: int


@dataclass(slots=True)
class Request:
    header: Header
    db: str
    command: dict[str, Any]
    more_to_come: bool
    exhaust_allowed: bool
    legacy: bool
    checksum_present: bool


def parse_header(data: bytes | memoryview) -> Header:
    """The 16-byte standard message header (little-endian int32s)."""
    if len(data) < HEADER_SIZE:
        raise ProtocolError(f"message header needs {HEADER_SIZE} bytes, got {len(data)}")
    length, request_id, response_to, op_code = _HEADER.unpack_from(data)
    if not HEADER_SIZE < length <= MAX_MESSAGE_SIZE:
        raise ProtocolError(f"invalid message length {length}")
    return Header(length, request_id, response_to, op_code)


def decode_request(header: Header, body: bytes) -> Request:
    """Decode a request; ``body`` is the message after its 16-byte header."""
    if len(body) != header.length - HEADER_SIZE:
        raise ProtocolError(
            f"message body is {len(body)} bytes, header says {header.length - HEADER_SIZE}"
        )
    if header.op_code == OP_MSG:
        return _decode_op_msg(header, memoryview(body))
    if header.op_code == OP_QUERY:
        return _decode_op_query(header, memoryview(body))
    if header.op_code == OP_COMPRESSED:
        raise ProtocolError("OP_COMPRESSED is not supported: mongosim advertises no compressors")
    raise ProtocolError(f"unsupported opCode {header.op_code}")


def _header_bytes(header: Header) -> bytes:
    return _HEADER.pack(header.length, header.request_id, header.response_to, header.op_code)


def _decode_op_msg(header: Header, body: memoryview) -> Request:
    if len(body) < 5:
        raise ProtocolError("OP_MSG too short")
    (flags,) = _UINT32.unpack_from(body)
    unknown = flags & _REQUIRED_BITS & ~(CHECKSUM_PRESENT | MORE_TO_COME)
    if unknown:
        raise ProtocolError(f"OP_MSG has unknown required flag bits {unknown:#x}")
    end = len(body)
    if flags & CHECKSUM_PRESENT:
        end -= 4
        if end < 5:
            raise ProtocolError("OP_MSG too short for its checksum")
        (expected,) = _UINT32.unpack_from(body, end)
        # The checksum covers the whole message (header included) except itself.
        actual = crc32c.crc32c(body[:end], crc32c.crc32c(_header_bytes(header)))
        if actual != expected:
            raise ProtocolError("OP_MSG checksum mismatch")
    command, sequences = _sections(body, 4, end)
    for identifier, docs in sequences.items():
        if identifier in command:
            raise ProtocolError(
                f"OP_MSG document sequence '{identifier}' duplicates a field of the command body"
            )
        command[identifier] = docs
    db = command.get("$db")
    if not isinstance(db, str):
        # src/mongo/rpc/op_msg.cpp: OpMsgRequest::getDatabase.
        raise MongoError(40571, "OP_MSG requests require a $db argument")
    return Request(
        header,
        db,
        command,
        bool(flags & MORE_TO_COME),
        bool(flags & EXHAUST_ALLOWED),
        False,
        bool(flags & CHECKSUM_PRESENT),
    )


def _sections(
    body: memoryview, offset: int, end: int
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    command: dict[str, Any] | None = None
    sequences: dict[str, list[dict[str, Any]]] = {}
    while offset < end:
        kind = body[offset]
        size = _section_size(body, offset + 1, end)
        start, offset = offset + 1, offset + 1 + size
        if kind == 0:
            if command is not None:
                raise ProtocolError("OP_MSG has more than one body section")
            command = _decode_doc(body[start:offset])
        elif kind == 1:
            identifier, docs = _document_sequence(body[start:offset])
            if identifier in sequences:
                raise ProtocolError(f"OP_MSG has two document sequences named '{identifier}'")
            sequences[identifier] = docs
        else:
            raise ProtocolError(f"OP_MSG has unknown section kind {kind}")
    if command is None:
        raise ProtocolError("OP_MSG has no body section")
    return command, sequences


def _section_size(body: memoryview, offset: int, end: int) -> int:
    if offset + 4 > end:
        raise ProtocolError("OP_MSG section is truncated")
    (size,) = _INT32.unpack_from(body, offset)
    if size < 5 or offset + size > end:
        raise ProtocolError("OP_MSG section size is out of bounds")
    return int(size)


def _decode_doc(data: memoryview) -> dict[str, Any]:
    try:
        return bson.decode(data, codec_options=CODEC_OPTIONS)
    except Exception as exc:  # bson raises InvalidBSON and friends on corrupt input
        raise ProtocolError(f"invalid BSON: {exc}") from exc


def _document_sequence(section: memoryview) -> tuple[str, list[dict[str, Any]]]:
    # int32 size, cstring identifier, then BSON documents to the end of the section.
    nul = bytes(section[4:260]).find(b"\x00")  # identifiers are short; don't copy the docs
    if nul < 0:
        raise ProtocolError("OP_MSG document sequence identifier is not terminated")
    identifier = bytes(section[4 : 4 + nul]).decode("utf-8")
    try:
        docs = bson.decode_all(section[5 + nul :], CODEC_OPTIONS)
    except Exception as exc:
        raise ProtocolError(f"invalid BSON in document sequence '{identifier}': {exc}") from exc
    return identifier, docs


def _cstring(body: memoryview, offset: int) -> tuple[str, int]:
    nul = bytes(body[offset : offset + 1024]).find(b"\x00")
    if nul < 0:
        raise ProtocolError("OP_QUERY collection name is not terminated")
    return bytes(body[offset : offset + nul]).decode("utf-8"), offset + nul + 1


def _decode_op_query(header: Header, body: memoryview) -> Request:
    # int32 flags, cstring fullCollectionName, int32 numberToSkip, int32 numberToReturn,
    # document query, [document returnFieldsSelector].
    if len(body) < 4:
        raise ProtocolError("OP_QUERY too short")
    namespace, offset = _cstring(body, 4)
    offset += 8
    size = _section_size(body, offset, len(body))
    query = _decode_doc(body[offset : offset + size])
    db, _, coll = namespace.partition(".")
    if coll != "$cmd":
        # mongod 5.1+ answers legacy OP_QUERY only for commands (and only hello/isMaster).
        raise MongoError(
            352,
            f"Unsupported OP_QUERY command on {namespace}. The client driver "
            "may require an upgrade.",
            code_name="UnsupportedOpQueryCommand",
        )
    command = _unwrap_query(query)
    return Request(header, db, command, False, False, True, False)


def _unwrap_query(query: dict[str, Any]) -> dict[str, Any]:
    """Legacy drivers wrap a command as {$query: {...}, $readPreference: ...}."""
    first = next(iter(query), None)
    if first not in ("$query", "query") or not isinstance(query[first], Mapping):
        return query
    command = dict(query[first])
    if "$readPreference" in query:
        command["$readPreference"] = query["$readPreference"]
    return command


def encode_reply(
    request: Request, reply: Mapping[str, Any], *, request_id: int, more_to_come: bool = False
) -> bytes:
    """The reply to ``request``: OP_REPLY for legacy OP_QUERY, else OP_MSG."""
    doc = bson.encode(reply, codec_options=CODEC_OPTIONS)
    response_to = request.header.request_id
    if request.legacy:
        length = HEADER_SIZE + _REPLY_PREFIX.size + len(doc)
        return b"".join(
            (
                _HEADER.pack(length, request_id, response_to, OP_REPLY),
                _REPLY_PREFIX.pack(AWAIT_CAPABLE, 0, 0, 1),
                doc,
            )
        )
    flags = MORE_TO_COME if more_to_come else 0
    if request.checksum_present:
        flags |= CHECKSUM_PRESENT
    length = HEADER_SIZE + 4 + 1 + len(doc) + (4 if request.checksum_present else 0)
    message = b"".join(
        (_HEADER.pack(length, request_id, response_to, OP_MSG), _UINT32.pack(flags), b"\x00", doc)
    )
    if request.checksum_present:
        message += _UINT32.pack(crc32c.crc32c(message))
    return message

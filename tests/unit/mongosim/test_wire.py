"""The wire codec against messages built by PyMongo's own encoder and by hand."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import bson
import crc32c
import pytest
from bson import CodecOptions
from mongosim.errors import MongoError
from mongosim.wire import (
    MAX_BSON_SIZE,
    MAX_MESSAGE_SIZE,
    OP_COMPRESSED,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    Header,
    ProtocolError,
    Request,
    decode_request,
    encode_reply,
    parse_header,
)
from pymongo import message as pymongo_message


def _decode(message: bytes) -> Request:
    header = parse_header(message)
    return decode_request(header, message[16:])


def _pymongo_op_msg(command: dict[str, Any], db: str = "db", flags: int = 0) -> bytes:
    _, data, _, _ = pymongo_message._op_msg(flags, command, db, None, CodecOptions())
    return bytes(data)


def _op_msg(flags: int, sections: bytes, request_id: int = 7, checksum: bool = False) -> bytes:
    length = 16 + 4 + len(sections) + (4 if checksum else 0)
    data = struct.pack("<iiiiI", length, request_id, 0, OP_MSG, flags) + sections
    if checksum:
        data += struct.pack("<I", crc32c.crc32c(data))
    return data


def _body(doc: dict[str, Any]) -> bytes:
    return b"\x00" + bson.encode(doc)


def _sequence(identifier: str, docs: list[dict[str, Any]]) -> bytes:
    payload = identifier.encode() + b"\x00" + b"".join(bson.encode(d) for d in docs)
    return b"\x01" + struct.pack("<i", 4 + len(payload)) + payload


def _op_query(namespace: str, query: dict[str, Any], request_id: int = 3) -> bytes:
    body = (
        struct.pack("<i", 0)
        + namespace.encode()
        + b"\x00"
        + struct.pack("<ii", 0, -1)
        + bson.encode(query)
    )
    return struct.pack("<iiii", 16 + len(body), request_id, 0, OP_QUERY) + body


def test_constants_match_mongod_limits() -> None:
    """maxMessageSizeBytes and maxBsonObjectSize as mongod reports them in hello."""
    assert (MAX_MESSAGE_SIZE, MAX_BSON_SIZE) == (48_000_000, 16 * 1024 * 1024)
    assert (OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG) == (1, 2004, 2012, 2013)


def test_parse_header_reads_little_endian_fields() -> None:
    assert parse_header(struct.pack("<iiii", 100, 5, 9, OP_MSG) + b"x") == Header(100, 5, 9, 2013)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" * 15,
        struct.pack("<iiii", 16, 1, 0, OP_MSG),
        struct.pack("<iiii", -5, 1, 0, OP_MSG),
        struct.pack("<iiii", MAX_MESSAGE_SIZE + 1, 1, 0, OP_MSG),
    ],
    ids=["short", "empty-body", "negative", "too-large"],
)
def test_parse_header_rejects_bad_lengths(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_header(data)


def test_op_msg_from_pymongo_decodes_body_and_db() -> None:
    request = _decode(
        _pymongo_op_msg({"ping": 1, "when": dt.datetime(2024, 1, 2, tzinfo=dt.UTC)}, db="admin")
    )
    assert request.db == "admin"
    assert request.command["ping"] == 1
    assert request.command["when"].tzinfo is not None  # decoded with mongosim's codec options
    assert (request.legacy, request.more_to_come, request.checksum_present) == (False,) * 3


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"insert": "c", "documents": [{"a": 1}, {"a": 2}]}, "documents"),
        ({"update": "c", "updates": [{"q": {}, "u": {"$set": {"a": 1}}}]}, "updates"),
        ({"delete": "c", "deletes": [{"q": {"a": 1}, "limit": 0}]}, "deletes"),
    ],
)
def test_pymongo_document_sequences_become_command_arrays(
    command: dict[str, Any], field: str
) -> None:
    """PyMongo sends bulk payloads as kind-1 sections; they come back as arrays."""
    request = _decode(_pymongo_op_msg(dict(command)))
    assert request.command[field] == command[field]
    assert request.command["$db"] == "db"


def test_hand_built_op_msg_with_several_sequences() -> None:
    sections = (
        _sequence("documents", [{"a": 1}])
        + _body({"insert": "c", "$db": "x"})
        + _sequence("other", [])
    )
    request = _decode(_op_msg(0, sections))
    assert request.command == {"insert": "c", "$db": "x", "documents": [{"a": 1}], "other": []}


@pytest.mark.parametrize(
    ("flags", "more_to_come", "exhaust"),
    [
        (0, False, False),
        (1 << 1, True, False),
        (1 << 16, False, True),
        ((1 << 16) | (1 << 1), True, True),
        (1 << 20, False, False),
    ],
)
def test_op_msg_flag_bits(flags: int, more_to_come: bool, exhaust: bool) -> None:
    """moreToCome and exhaustAllowed are reported; unknown optional bits 16-31 are ignored."""
    request = _decode(_op_msg(flags, _body({"ping": 1, "$db": "admin"})))
    assert (request.more_to_come, request.exhaust_allowed) == (more_to_come, exhaust)


def test_op_msg_unknown_required_bit_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="unknown required flag"):
        _decode(_op_msg(1 << 5, _body({"ping": 1, "$db": "admin"})))


def test_op_msg_checksum_is_verified() -> None:
    message = _op_msg(1, _body({"ping": 1, "$db": "admin"}), checksum=True)
    assert _decode(message).checksum_present
    corrupt = message[:-1] + bytes([message[-1] ^ 0xFF])
    with pytest.raises(ProtocolError, match="checksum"):
        _decode(corrupt)


@pytest.mark.parametrize(
    ("sections", "match"),
    [
        (_sequence("documents", []), "no body section"),
        (b"", "too short"),
        (_body({"a": 1, "$db": "d"}) * 2, "more than one body"),
        (b"\x02" + bson.encode({}), "unknown section kind"),
        (b"\x00\xff\x00\x00\x00", "out of bounds"),
        (
            _body({"insert": "c", "$db": "d", "documents": []}) + _sequence("documents", []),
            "duplicates",
        ),
        (_body({"$db": "d"}) + _sequence("s", []) + _sequence("s", []), "two document sequences"),
        (b"\x00\x06\x00\x00\x00\x07\x00", "invalid BSON"),
    ],
)
def test_malformed_op_msg_is_a_protocol_error(sections: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        _decode(_op_msg(0, sections))


def test_op_msg_without_db_is_a_command_error() -> None:
    with pytest.raises(MongoError) as info:
        _decode(_op_msg(0, _body({"ping": 1})))
    assert info.value.code == 40571


def test_body_length_must_match_header() -> None:
    message = _op_msg(0, _body({"ping": 1, "$db": "admin"}))
    with pytest.raises(ProtocolError):
        decode_request(parse_header(message), message[16:-1])


def test_op_compressed_and_unknown_opcodes_are_protocol_errors() -> None:
    for op_code in (OP_COMPRESSED, 2010):
        data = struct.pack("<iiii", 20, 1, 0, op_code) + b"\x00" * 4
        with pytest.raises(ProtocolError):
            _decode(data)


@pytest.mark.parametrize(
    ("query", "command"),
    [
        (
            {"isMaster": 1, "client": {"driver": {"name": "x"}}},
            {"isMaster": 1, "client": {"driver": {"name": "x"}}},
        ),
        (
            {"$query": {"hello": 1}, "$readPreference": {"mode": "primaryPreferred"}},
            {"hello": 1, "$readPreference": {"mode": "primaryPreferred"}},
        ),
        ({"query": {"ismaster": 1}}, {"ismaster": 1}),
    ],
)
def test_legacy_op_query_handshake_is_unwrapped(
    query: dict[str, Any], command: dict[str, Any]
) -> None:
    request = _decode(_op_query("admin.$cmd", query))
    assert (request.db, request.command, request.legacy) == ("admin", command, True)


def test_legacy_op_query_on_a_collection_is_rejected() -> None:
    with pytest.raises(MongoError) as info:
        _decode(_op_query("db.coll", {"a": 1}))
    assert info.value.code == 352


def test_reply_to_op_msg_is_op_msg_with_one_body_section() -> None:
    request = _decode(_op_msg(0, _body({"ping": 1, "$db": "admin"}), request_id=42))
    reply = encode_reply(request, {"ok": 1.0}, request_id=99)
    length, request_id, response_to, op_code, flags = struct.unpack_from("<iiiiI", reply)
    assert (length, request_id, response_to, op_code, flags) == (len(reply), 99, 42, OP_MSG, 0)
    assert reply[20] == 0
    assert bson.decode(reply[21:]) == {"ok": 1.0}


def test_reply_sets_more_to_come_for_exhaust_streaming() -> None:
    request = _decode(_op_msg(1 << 16, _body({"getMore": 1, "$db": "d"})))
    reply = encode_reply(request, {"ok": 1}, request_id=1, more_to_come=True)
    assert struct.unpack_from("<I", reply, 16)[0] == 2


def test_reply_carries_checksum_only_when_the_request_did() -> None:
    request = _decode(_op_msg(1, _body({"ping": 1, "$db": "admin"}), checksum=True))
    reply = encode_reply(request, {"ok": 1, "$db": "x"}, request_id=5)
    assert struct.unpack_from("<I", reply, 16)[0] == 1
    assert struct.unpack_from("<I", reply, len(reply) - 4)[0] == crc32c.crc32c(reply[:-4])
    assert _decode(reply).command == {"ok": 1, "$db": "x"}  # our decoder verifies the checksum


def test_reply_to_op_query_is_op_reply() -> None:
    request = _decode(_op_query("admin.$cmd", {"isMaster": 1}, request_id=11))
    reply = encode_reply(request, {"ismaster": True, "ok": 1.0}, request_id=12)
    length, rid, response_to, op_code, flags, cursor_id, start, n = struct.unpack_from(
        "<iiiiiqii", reply
    )
    assert (length, rid, response_to, op_code) == (len(reply), 12, 11, OP_REPLY)
    assert (flags, cursor_id, start, n) == (8, 0, 0, 1)
    assert bson.decode(reply[36:]) == {"ismaster": True, "ok": 1.0}


def test_pymongo_can_unpack_our_op_msg_reply() -> None:
    """The driver's own reply parser reads what we write."""
    request = _decode(_pymongo_op_msg({"ping": 1}))
    reply = encode_reply(request, {"ok": 1.0, "n": 3}, request_id=2)
    parsed = pymongo_message._OpMsg.unpack(reply[16:])
    assert parsed.unpack_response()[0] == {"ok": 1.0, "n": 3}

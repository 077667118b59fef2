"""SCRAM-SHA-1 and SCRAM-SHA-256, the server's side, as mongod speaks them.

Sources: RFC 5802 (SCRAM, SCRAM-SHA-1), RFC 7677 (SCRAM-SHA-256), RFC 4013 (SASLprep),
the MongoDB driver "Authentication" specification (the MongoDB password digest for
SCRAM-SHA-1, SASLprep for SCRAM-SHA-256, ``skipEmptyExchange``) and mongod's
``src/mongo/db/auth/sasl_scram_server_conversation.cpp`` (salt sizes, iteration counts).

The arithmetic (:func:`salted_password`, :func:`client_proof`, ...) is pure and tested
against the RFCs' vectors; :class:`ServerConversation` is the two-step exchange.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

SHA1, SHA256 = "SCRAM-SHA-1", "SCRAM-SHA-256"
MECHANISMS = (SHA1, SHA256)
_HASH = {SHA1: "sha1", SHA256: "sha256"}
# mongod: scramIterationCount 10000, scramSHA256IterationCount 15000; salt 16 / 28 bytes.
ITERATIONS = {SHA1: 10_000, SHA256: 15_000}
SALT_BYTES = {SHA1: 16, SHA256: 28}


class ScramError(Exception):
    """The exchange failed; the server answers AuthenticationFailed (18)."""


@dataclass(frozen=True, slots=True)
class Credential:
    """What the server stores for one mechanism (never the password)."""

    mechanism: str
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def _hmac(algo: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, algo).digest()


def salted_password(mechanism: str, password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 ``Hi(Normalize(password), salt, i)``: PBKDF2 with the mechanism's HMAC."""
    return hashlib.pbkdf2_hmac(_HASH[mechanism], password, salt, iterations)


def keys(mechanism: str, salted: bytes) -> tuple[bytes, bytes, bytes]:
    """``(ClientKey, StoredKey, ServerKey)`` from the salted password (RFC 5802 §3)."""
    algo = _HASH[mechanism]
    client_key = _hmac(algo, salted, b"Client Key")
    return client_key, hashlib.new(algo, client_key).digest(), _hmac(algo, salted, b"Server Key")


def client_proof(mechanism: str, salted: bytes, auth_message: bytes) -> bytes:
    """``ClientKey XOR HMAC(StoredKey, AuthMessage)``."""
    client_key, stored_key, _ = keys(mechanism, salted)
    signature = _hmac(_HASH[mechanism], stored_key, auth_message)
    return bytes(a ^ b for a, b in zip(client_key, signature, strict=True))


def server_signature(mechanism: str, server_key: bytes, auth_message: bytes) -> bytes:
    return _hmac(_HASH[mechanism], server_key, auth_message)


def saslprep(text: str) -> str:
    """RFC 4013 SASLprep (stored strings), with the standard library's ``stringprep`` tables."""
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    out = unicodedata.normalize("NFKC", mapped)
    prohibited = (
        stringprep.in_table_c12,
        stringprep.in_table_c21_c22,
        stringprep.in_table_c3,
        stringprep.in_table_c4,
        stringprep.in_table_c5,
        stringprep.in_table_c6,
        stringprep.in_table_c7,
        stringprep.in_table_c8,
        stringprep.in_table_c9,
        stringprep.in_table_a1,
    )
    if any(check(c) for c in out for check in prohibited):
        raise ScramError("SASLprep: prohibited character")
    if any(stringprep.in_table_d1(c) for c in out):  # RFC 3454 §6 bidirectional rule
        if not (stringprep.in_table_d1(out[0]) and stringprep.in_table_d1(out[-1])):
            raise ScramError("SASLprep: bad bidirectional string")
        if any(stringprep.in_table_d2(c) for c in out):
            raise ScramError("SASLprep: bad bidirectional string")
    return out


def mongo_password(mechanism: str, user: str, password: str) -> bytes:
    """The bytes SCRAM salts: SHA-1 hashes ``user:mongo:password`` with MD5 (hex),
    SHA-256 uses the SASLprepped password (driver Authentication specification)."""
    if mechanism == SHA1:
        digest = hashlib.md5(f"{user}:mongo:{password}".encode(), usedforsecurity=False)
        return digest.hexdigest().encode()
    return saslprep(password).encode()


def make_credential(
    mechanism: str, user: str, password: str, salt: bytes | None = None, iterations: int = 0
) -> Credential:
    salt = salt if salt is not None else os.urandom(SALT_BYTES[mechanism])
    iterations = iterations or ITERATIONS[mechanism]
    salted = salted_password(mechanism, mongo_password(mechanism, user, password), salt, iterations)
    _, stored, server = keys(mechanism, salted)
    return Credential(mechanism, salt, iterations, stored, server)


def _fields(message: str) -> dict[str, str]:
    out = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"malformed SCRAM message: {part[:1]!r}")
        out[part[0]] = part[2:]
    return out


def _unescape(name: str) -> str:
    return name.replace("=2C", ",").replace("=3D", "=")


class ServerConversation:
    """One SCRAM exchange: :meth:`first` answers client-first, :meth:`final` client-final."""

    def __init__(
        self,
        mechanism: str,
        lookup: Callable[[str], Credential | None],
        nonce: str | None = None,
    ) -> None:
        self.mechanism, self._lookup = mechanism, lookup
        self._nonce = nonce or base64.b64encode(os.urandom(24)).decode()
        self.user: str | None = None
        self._credential: Credential | None = None
        self._auth_prefix = ""
        self.done = False

    def first(self, payload: bytes) -> bytes:
        text = payload.decode()
        if not text.startswith(("n,", "y,")):
            raise ScramError("channel binding is not supported")
        _, _, bare = text.split(",", 2)
        fields = _fields(bare)
        self.user = _unescape(fields.get("n", ""))
        credential = self._lookup(self.user)
        if credential is None:
            raise ScramError(f"Could not find user {self.user!r}")
        self._credential = credential
        combined = fields.get("r", "") + self._nonce
        server_first = (
            f"r={combined},s={base64.b64encode(credential.salt).decode()},i={credential.iterations}"
        )
        self._auth_prefix = f"{bare},{server_first}"
        self._combined_nonce = combined
        return server_first.encode()

    def final(self, payload: bytes) -> bytes:
        cred = self._credential
        if cred is None:
            raise ScramError("client-final before client-first")
        text = payload.decode()
        without_proof, _, proof_part = text.rpartition(",p=")
        fields = _fields(without_proof)
        if fields.get("r") != self._combined_nonce:
            raise ScramError("nonce mismatch")
        auth_message = f"{self._auth_prefix},{without_proof}".encode()
        algo = _HASH[self.mechanism]
        signature = _hmac(algo, cred.stored_key, auth_message)
        proof = base64.b64decode(proof_part)
        if len(proof) != len(signature):
            raise ScramError("bad proof")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        if not hmac.compare_digest(hashlib.new(algo, client_key).digest(), cred.stored_key):
            raise ScramError("proof mismatch")
        self.done = True
        verifier = server_signature(self.mechanism, cred.server_key, auth_message)
        return b"v=" + base64.b64encode(verifier)

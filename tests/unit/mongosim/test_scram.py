"""SCRAM arithmetic against the RFCs' test vectors, and one whole server exchange."""

from __future__ import annotations

import base64

import pytest

from mongosim import scram

# RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256): user "user", password "pencil".
VECTORS = [
    (
        scram.SHA1,
        "fyko+d2lbbFgONRv9qkxdawL",
        "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
        "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
        "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
        "rmF9pqV8S7suAoZWja4dJRkFsKQ=",
    ),
    (
        scram.SHA256,
        "rOprNGfwEbeRWgbNEkqO",
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
    ),
]


def _server_first_fields(message: str) -> tuple[bytes, int]:
    fields = dict(part.split("=", 1) for part in message.split(","))
    return base64.b64decode(fields["s"]), int(fields["i"])


@pytest.mark.parametrize(("mech", "nonce", "server_first", "final", "proof", "verifier"), VECTORS)
def test_client_proof_and_server_signature_match_the_rfc_vectors(
    mech: str, nonce: str, server_first: str, final: str, proof: str, verifier: str
) -> None:
    """The RFC's proof and server signature come out of the pure functions."""
    salt, iterations = _server_first_fields(server_first)
    salted = scram.salted_password(mech, b"pencil", salt, iterations)
    auth_message = f"n=user,r={nonce},{server_first},{final}".encode()
    assert base64.b64encode(scram.client_proof(mech, salted, auth_message)).decode() == proof
    _, _, server_key = scram.keys(mech, salted)
    signature = scram.server_signature(mech, server_key, auth_message)
    assert base64.b64encode(signature).decode() == verifier


@pytest.mark.parametrize(("mech", "nonce", "server_first", "final", "proof", "verifier"), VECTORS)
def test_the_server_conversation_accepts_the_rfc_exchange(
    mech: str, nonce: str, server_first: str, final: str, proof: str, verifier: str
) -> None:
    """Replaying the RFC's client messages gets the RFC's server messages back."""
    salt, iterations = _server_first_fields(server_first)
    salted = scram.salted_password(mech, b"pencil", salt, iterations)
    _, stored, server_key = scram.keys(mech, salted)
    credential = scram.Credential(mech, salt, iterations, stored, server_key)
    server_nonce = server_first.split(",")[0][2 + len(nonce) :]
    conversation = scram.ServerConversation(mech, {"user": credential}.get, nonce=server_nonce)
    assert conversation.first(f"n,,n=user,r={nonce}".encode()).decode() == server_first
    assert conversation.final(f"{final},p={proof}".encode()).decode() == f"v={verifier}"
    assert conversation.done and conversation.user == "user"


def test_a_wrong_proof_is_refused() -> None:
    """One flipped proof byte fails the exchange."""
    mech, nonce, server_first, _final, proof, _ = VECTORS[1]
    salt, iterations = _server_first_fields(server_first)
    _, stored, server_key = scram.keys(mech, scram.salted_password(mech, b"pencil", salt, 4096))
    credential = scram.Credential(mech, salt, iterations, stored, server_key)
    conversation = scram.ServerConversation(mech, {"user": credential}.get, nonce="x")
    conversation.first(f"n,,n=user,r={nonce}".encode())
    bad = base64.b64encode(bytes([base64.b64decode(proof)[0] ^ 1]) + base64.b64decode(proof)[1:])
    with pytest.raises(scram.ScramError):
        conversation.final(f"c=biws,r={nonce}x,p={bad.decode()}".encode())


def test_mongodb_hashes_the_sha1_password_and_saslpreps_the_sha256_one() -> None:
    """SCRAM-SHA-1 salts MD5("user:mongo:pwd") in hex; SCRAM-SHA-256 the SASLprepped password."""
    assert scram.mongo_password(scram.SHA1, "user", "pencil") == b"1c33006ec1ffd90f9cadcbcc0e118200"
    assert scram.mongo_password(scram.SHA256, "user", "I\u00adX") == b"IX"  # RFC 4013 §3 example
    assert scram.saslprep("\u2168") == "IX"
    assert scram.saslprep("user") == "user"
    with pytest.raises(scram.ScramError):
        scram.saslprep("\u0007")

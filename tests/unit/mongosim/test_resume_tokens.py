"""Resume tokens: an event's token is the one its position encodes, and decodes back."""

from __future__ import annotations

import pytest
from bson.timestamp import Timestamp

from mongosim import resume_tokens


@pytest.mark.parametrize(
    ("ts", "index"),
    [
        (Timestamp(1, 0), 0),
        (Timestamp(1796017981, 3376), 17),
        (Timestamp(2**32 - 1, 2**32 - 1), 2**32 - 2),
    ],
)
def test_an_event_token_is_the_encoding_of_its_position(ts: Timestamp, index: int) -> None:
    token = resume_tokens.event_token(ts, index)
    assert token == resume_tokens.ResumeToken(ts, index).encode()
    assert resume_tokens.decode(token) == resume_tokens.ResumeToken(ts, index)

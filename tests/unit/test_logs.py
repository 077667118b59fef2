"""The log processor that masks MongoDB URI credentials in string values."""

from __future__ import annotations

from typing import Any

import pytest

from streamer.logs import _mask_credentials


def mask(**event: Any) -> dict[str, Any]:
    return dict(_mask_credentials(None, "info", dict(event)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            "mongodb://user:secret@host:27017/db",
            "mongodb://user:***@host:27017/db",
            id="mongodb",
        ),
        pytest.param("mongodb+srv://u:p@h/?tls=true", "mongodb+srv://u:***@h/?tls=true", id="srv"),
        pytest.param(
            "connect failed: mongodb://admin:s3cr%40t@db1,db2/?replicaSet=rs0 (timeout)",
            "connect failed: mongodb://admin:***@db1,db2/?replicaSet=rs0 (timeout)",
            id="inside-a-message",
        ),
        pytest.param(
            "a=mongodb://a:1@h b=mongodb+srv://b:2@k",
            "a=mongodb://a:***@h b=mongodb+srv://b:***@k",
            id="two-uris",
        ),
        pytest.param("mongodb://host:27017/db", "mongodb://host:27017/db", id="no-credentials"),
        pytest.param("mongodb://user@host/db", "mongodb://user@host/db", id="user-only"),
        pytest.param("the mongodb server is down", "the mongodb server is down", id="plain-text"),
        pytest.param("https://u:p@example.com", "https://u:p@example.com", id="other-scheme"),
    ],
)
def test_credentials_in_mongodb_uris_are_masked(value: str, expected: str) -> None:
    """Passwords in mongodb:// and mongodb+srv:// URIs become ***; the rest is kept."""
    assert mask(event="x", uri=value) == {"event": "x", "uri": expected}


def test_non_string_values_are_left_alone() -> None:
    """Numbers, None and containers pass through untouched (the same objects)."""
    nested = {"uri": "mongodb://u:p@h"}
    event = mask(event="e", n=3, none=None, nested=nested)
    assert event == {"event": "e", "n": 3, "none": None, "nested": nested}
    assert event["nested"] is nested


def test_the_event_name_is_masked_too() -> None:
    """The event key itself is a string value like any other."""
    assert mask(event="using mongodb://u:pw@h")["event"] == "using mongodb://u:***@h"

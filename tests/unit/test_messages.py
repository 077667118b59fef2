"""The one-line messages for a database that cannot be used: what happened, what to check."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from streamer.core.errors import DatabaseUnavailable, FatalDatabaseError, TransientError
from streamer.runtime.messages import certificate_problem, fatal, unreachable
from streamer.settings import Settings


def settings(uri: str) -> Settings:
    return Settings(mongodb_uri=SecretStr(uri), server_selection_timeout_ms=5000)


@pytest.mark.parametrize(
    ("uri", "user", "source"),
    [
        ("mongodb://streamer:pw@h/?authSource=admin", "streamer", "admin"),
        ("mongodb://streamer:pw@h/myapp", "streamer", "myapp"),
        ("mongodb://streamer:pw@h/myapp?authSource=users", "streamer", "users"),
        ("mongodb://streamer:pw@h", "streamer", "admin"),
    ],
)
def test_a_failed_login_names_the_user_and_auth_database_never_the_password(
    uri: str, user: str, source: str
) -> None:
    line = fatal(settings(uri), FatalDatabaseError("Authentication failed.", code=18))
    assert line.startswith(f"authentication failed for user {user!r} on auth database {source!r}")
    assert "pw" not in line.replace("password", "")


def test_a_missing_privilege_names_the_user_and_points_at_the_role() -> None:
    exc = FatalDatabaseError(
        'not authorized on myapp to execute command { find: "orders" }, full error: {...}',
        code=13,
    )
    line = fatal(settings("mongodb://streamer:pw@h/?authSource=admin"), exc)
    assert line == (
        "user 'streamer' (auth database 'admin') is not authorized: not authorized on myapp "
        'to execute command { find: "orders" }; grant the role in the README\'s '
        "'The MongoDB role' section"
    )


def test_an_untrusted_certificate_is_named_as_such() -> None:
    driver = TransientError(
        "h:27017: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get "
        "local issuer certificate (_ssl.c:1006) (configured timeouts: ...), Timeout: 5s"
    )
    exc = DatabaseUnavailable("connect")
    exc.__cause__ = driver
    assert certificate_problem(exc) == (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
        "issuer certificate"
    )
    line = unreachable(settings("mongodb://u:pw@h:27017/?tls=true"), exc)
    assert line.startswith("TLS certificate check failed for mongodb://u:***@h:27017/?tls=true")
    assert "STREAMER_TLS_CA_FILE" in line


def test_an_unreachable_server_without_a_certificate_problem_says_where_and_how_long() -> None:
    exc = DatabaseUnavailable("connect: ServerSelectionTimeoutError")
    assert unreachable(settings("mongodb://h:1"), exc) == (
        "cannot reach MongoDB at mongodb://h:1 within 5 s (STREAMER_SERVER_SELECTION_TIMEOUT_MS);"
        " check STREAMER_MONGODB_URI and network access to it"
    )

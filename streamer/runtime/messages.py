"""The one line an operator reads when the database cannot be used, and what to check.

Used by ``streamer run``'s log lines and by the one-shot commands' error line alike, so
both say the same thing. Never the password: URIs appear redacted.
"""

from __future__ import annotations

from ..core.errors import FatalDatabaseError
from ..mongo.uri import login
from ..settings import Settings

AUTHENTICATION_FAILED = 18
UNAUTHORIZED = 13
# What OpenSSL and Python's ssl module say when a certificate is not trusted or does
# not match the host; the driver keeps that text in its ServerSelectionTimeoutError.
CERTIFICATE_ERRORS = (
    "CERTIFICATE_VERIFY_FAILED",
    "certificate verify failed",
    "Hostname mismatch",
    "IP address mismatch",
    "doesn't match",
)


def _chain_text(exc: BaseException) -> str:
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(str(seen))
        seen = seen.__cause__ or seen.__context__
    return " ".join(parts)


def certificate_problem(exc: BaseException) -> str | None:
    """The TLS verification failure behind ``exc`` (its first line), if there is one."""
    text = _chain_text(exc)
    for marker in CERTIFICATE_ERRORS:
        at = text.find(marker)
        if at >= 0:
            start = text.rfind("[SSL", 0, at)
            snippet = text[start if start >= 0 else at :]
            return snippet.split(")")[0].split(" (_ssl")[0].strip(" ,:.")
    return None


# The host name check's failures: the CA is trusted, the certificate names other hosts.
HOST_MISMATCH = ("Hostname mismatch", "IP address mismatch", "doesn't match")


def _tls_hint(problem: str) -> str:
    """What to check: the host name for a mismatch, else the CA (and the host name)."""
    if any(marker in problem for marker in HOST_MISMATCH):
        return (
            "the server's certificate does not name the host in STREAMER_MONGODB_URI: "
            "connect by a name its subjectAltName lists, or reissue it for this host"
        )
    return (
        "check STREAMER_TLS_CA_FILE (the CA that signed the server's certificate) and "
        "the host name in STREAMER_MONGODB_URI"
    )


def unreachable(settings: Settings, exc: BaseException | None = None) -> str:
    """The database cannot be reached: where, how long, and what to check."""
    where = settings.redacted_uri
    if exc is not None:
        problem = certificate_problem(exc)
        if problem is not None:
            return f"TLS certificate check failed for {where}: {problem}; {_tls_hint(problem)}"
    timeout_s = settings.server_selection_timeout_ms / 1000
    return (
        f"cannot reach MongoDB at {where} within {timeout_s:g} s "
        "(STREAMER_SERVER_SELECTION_TIMEOUT_MS); check STREAMER_MONGODB_URI and network "
        "access to it"
    )


def fatal(settings: Settings, exc: FatalDatabaseError) -> str:
    """A database error retrying cannot fix, said so that someone can fix it."""
    user, source = login(settings.mongodb_uri.get_secret_value())
    if exc.code == AUTHENTICATION_FAILED:
        return (
            f"authentication failed for user {user!r} on auth database {source!r}; check "
            "the user name and password in STREAMER_MONGODB_URI"
        )
    if exc.code == UNAUTHORIZED:
        first = str(exc).split(", full error:")[0]
        return (
            f"user {user!r} (auth database {source!r}) is not authorized: {first}; grant "
            "the role in the README's 'The MongoDB role' section"
        )
    return str(exc).split(", full error:")[0]

"""The MongoDB URI, checked by the driver's own parser when the settings load.

No network: a ``mongodb+srv://`` URI is checked for its form only; its DNS records are
looked up when the client connects. So a malformed URI fails at start-up, naming the
setting, before the HTTP port is opened or any connection is tried.
"""

from __future__ import annotations

from pymongo.errors import ConfigurationError

# The parser behind pymongo.uri_parser.parse_uri, without its SRV resolution (which
# parse_uri does eagerly, over the network). Pinned through the lock file; the unit
# tests of the settings exercise it, so a driver upgrade that moves it fails there.
from pymongo.uri_parser_shared import _validate_uri


def uri_problem(uri: str) -> str | None:
    """Why the driver would refuse ``uri``, or None if it accepts it."""
    try:
        _validate_uri(uri, validate=True, warn=False)
    except (ConfigurationError, ValueError) as exc:  # InvalidURI is a ConfigurationError
        return str(exc).splitlines()[0]
    return None


def login(uri: str) -> tuple[str | None, str]:
    """The user a URI logs in as and its authentication database.

    The driver's rule ("Authentication" specification, "authSource"): the authSource
    option, else the database in the URI's path, else ``admin``.
    """
    parsed = _validate_uri(uri, validate=False, warn=False)
    source = parsed["options"].get("authsource") or parsed["database"] or "admin"
    return parsed["username"], str(source)

"""The MongoDB URI, checked by the driver's own parser when the settings load.

No network: a ``mongodb+srv://`` URI is checked for its form only; its DNS records are
looked up when the client connects. So a malformed URI fails at start-up, naming the
setting, before the HTTP port is opened or any connection is tried.
"""

from __future__ import annotations

import re
from difflib import get_close_matches
from urllib.parse import unquote, urlsplit

from pymongo.common import URI_OPTIONS_VALIDATOR_MAP
from pymongo.errors import ConfigurationError

# The parser behind pymongo.uri_parser.parse_uri, without its SRV resolution (which
# parse_uri does eagerly, over the network). Pinned through the lock file; the unit
# tests of the settings exercise it, so a driver upgrade that moves it fails there.
from pymongo.uri_parser_shared import _validate_uri

# The connection string options as the documentation spells them; the driver knows them
# only in lower case, which is how it would suggest them ("maxpoolsize").
DOCUMENTED_OPTIONS = {
    name.lower(): name
    for name in [
        "appName",
        "authMechanism",
        "authMechanismProperties",
        "authSource",
        "compressors",
        "connectTimeoutMS",
        "directConnection",
        "heartbeatFrequencyMS",
        "journal",
        "loadBalanced",
        "localThresholdMS",
        "maxConnecting",
        "maxIdleTimeMS",
        "maxPoolSize",
        "maxStalenessSeconds",
        "minPoolSize",
        "readConcernLevel",
        "readPreference",
        "readPreferenceTags",
        "replicaSet",
        "retryReads",
        "retryWrites",
        "serverMonitoringMode",
        "serverSelectionTimeoutMS",
        "socketTimeoutMS",
        "srvMaxHosts",
        "srvServiceName",
        "ssl",
        "timeoutMS",
        "tls",
        "tlsAllowInvalidCertificates",
        "tlsAllowInvalidHostnames",
        "tlsCAFile",
        "tlsCertificateKeyFile",
        "tlsCertificateKeyFilePassword",
        "tlsCRLFile",
        "tlsDisableOCSPEndpointCheck",
        "tlsInsecure",
        "uuidRepresentation",
        "w",
        "waitQueueTimeoutMS",
        "wTimeoutMS",
        "zlibCompressionLevel",
    ]
}


def uri_problem(uri: str, shown: str | None = None) -> str | None:
    """Why the driver would refuse ``uri``, or None if it accepts it.

    ``shown`` is the URI as it may be printed (its password redacted). The driver does
    not name an unknown option (a stray ``?`` in a password would make part of it one),
    so the option is named here, and only when it is part of ``shown``.
    """
    try:
        _validate_uri(uri, validate=True, warn=False)
    except (ConfigurationError, ValueError) as exc:  # InvalidURI is a ConfigurationError
        problem = str(exc).splitlines()[0]
        if problem.startswith("Unknown option") and shown is not None:
            return unknown_option(shown) or problem
        return problem
    return None


def unknown_option(uri: str) -> str | None:
    """``unknown option 'maxPoolSze' (did you mean maxPoolSize?)`` for the first option
    of ``uri``'s query that the driver does not know; None if there is none."""
    for part in re.split("[&;]", urlsplit(uri).query):
        name = unquote(part.partition("=")[0])
        if not name or name.lower() in URI_OPTIONS_VALIDATOR_MAP:
            continue
        close = get_close_matches(name.lower(), DOCUMENTED_OPTIONS, n=1)
        hint = f" (did you mean {DOCUMENTED_OPTIONS[close[0]]}?)" if close else ""
        return f"unknown option {name!r}{hint}"
    return None


def login(uri: str) -> tuple[str | None, str]:
    """The user a URI logs in as and its authentication database.

    The driver's rule ("Authentication" specification, "authSource"): the authSource
    option, else the database in the URI's path, else ``admin``.
    """
    parsed = _validate_uri(uri, validate=False, warn=False)
    source = parsed["options"].get("authsource") or parsed["database"] or "admin"
    return parsed["username"], str(source)

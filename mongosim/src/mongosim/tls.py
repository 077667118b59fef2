"""TLS on the server's one port, with Python's ``ssl`` module (manual: "Configure
mongod and mongos for TLS/SSL").

``--tls-cert-key-file`` is the server's PEM certificate and key (mongod's
``--tlsCertificateKeyFile``); every connection must then speak TLS (``--tlsMode
requireTLS``). With ``--tls-ca-file`` clients must present a certificate signed by that CA
unless ``--tls-allow-connections-without-certificates`` is given, as with mongod's
``--tlsCAFile`` and ``--tlsAllowConnectionsWithoutCertificates``.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(
    cert_key_file: str | Path,
    ca_file: str | Path | None = None,
    allow_connections_without_certificates: bool = False,
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_key_file))
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
        context.verify_mode = (
            ssl.CERT_OPTIONAL if allow_connections_without_certificates else ssl.CERT_REQUIRED
        )
    return context

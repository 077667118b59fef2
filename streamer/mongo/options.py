"""What the client needs to know, as plain values: the driver door knows no ``Settings``.

The service's settings (:class:`streamer.settings.Settings`) build these once
(``Settings.mongo_options()``); a test or a tool can build them directly. Keeping
:mod:`streamer.mongo` below the settings means the settings may use the driver's own
URI parser (:mod:`streamer.mongo.uri`) without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .retries import RetryPolicy


@dataclass(frozen=True, slots=True)
class MongoOptions:
    """The client's connection options (MongoDB's names in the driver's own casing at
    :func:`streamer.mongo.client.client_options`), its retry budgets and which driver."""

    uri: str = field(repr=False)  # may hold a password: never in a repr or a log line
    database: str
    driver: Literal["motor", "pymongo"]
    max_pool_size: int
    min_pool_size: int
    server_selection_timeout_ms: int
    connect_timeout_ms: int
    socket_timeout_ms: int
    server_api_version: str | None
    tls: bool
    tls_ca_file: Path | None
    tls_certificate_key_file: Path | None
    tls_allow_invalid_certificates: bool
    slow_command_ms: int  # a command slower than this is logged (and counted)
    retry: RetryPolicy  # the budgets of every retry and of the commit's

"""structlog set-up: JSON lines by default, a readable console renderer on a TTY.

Lifecycle events (start, bootstrap, resume point, resync, shutdown) log at INFO or
above; per-batch details at DEBUG. Values that could hold secrets never reach a log
call (the URI is logged only through ``Settings.redacted_uri``); as a second line of
defence a processor masks any ``mongodb://user:pass@`` credentials in string values.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_CREDENTIALS = re.compile(r"(mongodb(?:\+srv)?://[^:/@\s]+):[^@\s]+@")


def mask_credentials(text: str) -> str:
    """``text`` with the password of any MongoDB URI in it replaced by ``***``."""
    return _CREDENTIALS.sub(r"\1:***@", text) if "mongodb" in text else text


def _mask_credentials(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = mask_credentials(value)
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _mask_credentials,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

"""Fixtures that more than one test folder uses; a folder's conftest.py imports them.

``mongo`` and ``service`` take the ``settings`` fixture of the folder that uses them
(integration: once per driver; faults: the scenario's).
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from streamer.mongo import Mongo
from streamer.settings import Settings

from .service import RunService, run_service


@pytest.fixture
async def mongo(settings: Settings) -> AsyncIterator[Mongo]:
    async with Mongo(settings.mongo_options()) as m:
        yield m


@pytest.fixture
def service() -> RunService:
    """``async with service(settings) as svc:`` runs the service for the block."""
    return run_service


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A TCP port something already listens on (on every address)."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])

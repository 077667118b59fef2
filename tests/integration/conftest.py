"""Fixtures for the service's integration tests: settings once per driver, a connected
:class:`Mongo`, the service in the test's loop (the shared ones from ``tests.support``)."""

from __future__ import annotations

from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.settings import Settings
from tests.support.fixtures import mongo, service, taken_port  # noqa: F401 - fixtures
from tests.support.service import test_settings


@pytest.fixture(params=["motor", "pymongo"])
def settings(
    request: pytest.FixtureRequest, mongo_uri: str, db: AsyncIOMotorDatabase[Any]
) -> Settings:
    """Settings for the test's own database, once per driver behind the seam."""
    return test_settings(mongo_uri, db.name, driver=request.param)

"""The fault-injection suite: each scenario drives traffic, injects its fault, and scores.

A bounded run is part of `make test`; `make faults` sets FAULTS_FULL=1 for the full
sizes. Every scenario records (events, faults injected, lost, duplicated) and the
session ends with one line summing them.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.settings import Settings
from tests.support.faults import RESULTS
from tests.support.fixtures import mongo, service  # noqa: F401 - fixtures
from tests.support.service import test_settings


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    events = sum(r.events for r in RESULTS)
    faults = sum(r.faults for r in RESULTS)
    lost = sum(r.lost for r in RESULTS)
    duplicated = sum(r.duplicated for r in RESULTS)
    for result in RESULTS:
        terminalreporter.write_line(result.line())
        for difference in result.diverged[:20]:
            terminalreporter.write_line(f"  diverged: {difference}")
    terminalreporter.write_line(
        f"faults: {len(RESULTS)} scenarios, {events} events, {faults} faults injected, "
        f"lost {lost}, duplicated {duplicated}"
    )


@pytest.fixture
def settings(mongo_uri: str, db: AsyncIOMotorDatabase[Any]) -> Settings:
    """The service's settings for a scenario (FAULTS_DRIVER picks the driver; motor)."""
    return test_settings(
        mongo_uri,
        db.name,
        driver=os.environ.get("FAULTS_DRIVER", "motor"),
        retry_max_s=20,
        server_selection_timeout_ms=2000,
        socket_timeout_ms=1000,  # blockConnection faults outlast it
        lease_ttl_s=2,
    )


@pytest.fixture
def scenario_name(request: pytest.FixtureRequest) -> str:
    return str(request.node.name.removeprefix("test_"))

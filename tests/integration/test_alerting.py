"""Alerting end to end: a real Prometheus scrapes the service and evaluates our rules.

Prometheus (Debian's package, installed by `make`) runs on loopback with a 1 s scrape
and evaluation interval and the rules of k8s/prometheusrule.yaml. The expressions and
labels are the manifest's own; only each alert's ``for`` is shortened to 2 s so the
test does not wait out production hold times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from motor.motor_asyncio import AsyncIOMotorDatabase

from streamer.settings import Settings
from tests.support.cli import free_port
from tests.support.polling import eventually
from tests.support.service import RunService, caught_up
from tests.support.service_process import ROOT
from tests.support.tools import require

RULES = ROOT / "k8s" / "prometheusrule.yaml"
HOLD = "2s"


def rules_for_test(tmp: Path) -> Path:
    spec = yaml.safe_load(RULES.read_text())["spec"]
    for group in spec["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "alert" in rule and "for" in rule:
                rule["for"] = HOLD
    path = tmp / "rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


class Prometheus:
    def __init__(self, tmp: Path, target_port: int) -> None:
        self.port = free_port()
        rules = rules_for_test(tmp)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": "streamer",
                    "scrape_timeout": "900ms",
                    "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
                }
            ],
        }
        self.config = tmp / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.data = tmp / "data"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, binary: str) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self.until(lambda _: True, path="/-/ready", raw=True)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 20)

    async def get(self, path: str) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}{path}") as response,
        ):
            if path.startswith("/api/"):
                return await response.json()
            return response.status

    async def alerts(self) -> list[dict[str, Any]]:
        body = await self.get("/api/v1/alerts")
        return list(body["data"]["alerts"])

    async def until(
        self, check: Any, path: str = "/api/v1/alerts", raw: bool = False, within_s: float = 40
    ) -> Any:
        last: Any = None

        async def met() -> bool:
            nonlocal last
            try:
                last = await self.get(path) if raw else await self.alerts()
            except aiohttp.ClientError:
                return False
            return bool((last == 200) if raw else check(last))

        await eventually(
            met,
            what=f"Prometheus at {path}" + (" answering 200" if raw else ": the condition"),
            within_s=within_s,
            interval_s=0.2,
            detail=lambda: f"last: {last}",
        )
        return last


def named(
    alerts: list[dict[str, Any]], name: str, state: str | None = None
) -> list[dict[str, Any]]:
    return [
        a
        for a in alerts
        if a["labels"]["alertname"] == name and (state is None or a["state"] == state)
    ]


@pytest.fixture
async def prometheus_binary() -> AsyncIterator[str]:
    yield require("prometheus")


async def test_low_stock_goes_pending_then_firing_and_resolves_and_a_stopped_service_is_down(
    db: AsyncIOMotorDatabase[Any],
    settings: Settings,
    service: RunService,
    prometheus_binary: str,
    tmp_path: Path,
) -> None:
    """LowStock follows the product's stock; StreamerDown fires once the service stops."""
    async with service(settings, probe_interval_s=0.2) as svc:
        prom = Prometheus(tmp_path, svc.http.port)
        await prom.start(prometheus_binary)
        try:
            await db.inventory.insert_one({"_id": "w1", "sku": "W-1", "name": "W", "stock": 50})
            await caught_up(db)
            await db.inventory.update_one({"_id": "w1"}, {"$set": {"stock": 10}})
            pending = await prom.until(lambda a: named(a, "LowStock", "pending"))
            firing = await prom.until(lambda a: named(a, "LowStock", "firing"))
            [alert] = named(firing, "LowStock", "firing")
            assert alert["labels"]["sku"] == "W-1"
            assert alert["labels"]["product_id"] == "w1"
            assert named(pending, "LowStock")
            await db.inventory.update_one({"_id": "w1"}, {"$set": {"stock": 100}})
            await prom.until(lambda a: not named(a, "LowStock"))
        except BaseException:
            await prom.stop()
            raise
    try:
        firing = await prom.until(lambda a: named(a, "StreamerDown", "firing"))
        assert named(firing, "StreamerDown", "firing")
    finally:
        await prom.stop()

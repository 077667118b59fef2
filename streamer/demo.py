"""``streamer demo`` (what ``make run`` runs): the whole thing on an embedded mongosim.

Imported only by ``streamer demo``: mongosim is its own distribution, which the service
does not depend on. Starts mongosim on a thread, bootstraps, seeds users, products and
orders, runs the service and a small traffic generator, and prints the /metrics URL and a
one-line live status until Ctrl-C; then stops the generator, the service (gracefully) and
mongosim.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import sys
import time
from contextlib import suppress
from typing import Any

from mongosim.threaded import ThreadedMongoSim
from motor.motor_asyncio import AsyncIOMotorClient
from pydantic import SecretStr

from .logs import configure_logging
from .settings import Settings
from .supervisor import Service, install_signal_handlers

STATUSES = ("completed", "completed", "pending", "cancelled")


async def seed(db: Any, rng: random.Random, users: int = 50, products: int = 20) -> None:
    now = dt.datetime.now(dt.UTC)
    await db.users.insert_many(
        [
            {
                "_id": f"user-{i}",
                "name": f"User {i}",
                "email": f"user{i}@example.com",
                "created_at": now,
                "active": True,
            }
            for i in range(users)
        ]
    )
    await db.inventory.insert_many(
        [
            {
                "_id": f"product-{i}",
                "sku": f"SKU-{i:03}",
                "name": f"Product {i}",
                "stock": rng.randrange(5, 60),
            }
            for i in range(products)
        ]
    )
    await db.orders.insert_many([order(rng, users) for _ in range(200)])


def order(rng: random.Random, users: int) -> dict[str, Any]:
    return {
        "user_id": f"user-{rng.randrange(users)}",
        "amount": round(rng.uniform(5, 200), 2),
        "status": rng.choice(STATUSES),
        "created_at": dt.datetime.now(dt.UTC),
    }


async def traffic(db: Any, rng: random.Random, stopping: asyncio.Event, users: int = 50) -> None:
    """A few dozen writes a second: orders placed and completed, stock sold and restocked."""
    while not stopping.is_set():
        choice = rng.random()
        product = f"product-{rng.randrange(20)}"
        if choice < 0.5:
            await db.orders.insert_one(order(rng, users))
            await db.inventory.update_one(
                {"_id": product}, {"$inc": {"stock": -rng.randrange(1, 4)}}
            )
        elif choice < 0.8:
            await db.orders.update_one({"status": "pending"}, {"$set": {"status": "completed"}})
        else:
            await db.inventory.update_one(
                {"_id": product, "stock": {"$lt": 15}}, {"$inc": {"stock": 40}}
            )
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 0.03)


async def status_line(service: Service, stopping: asyncio.Event) -> None:
    last_events, last_time = 0, time.monotonic()
    while not stopping.is_set():
        with suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), 1.0)
        now = time.monotonic()
        rate = (service.totals.events - last_events) / (now - last_time)
        last_events, last_time = service.totals.events, now
        lags = [time.time() - w.position.time for w in service.watchers.values() if w.position]
        lag = f"{max(lags):.1f}s" if lags else "-"
        open_alerts = len(service.metrics.alert_products.products)
        sys.stdout.write(
            f"\r{rate:7.1f} events/s  lag {lag:>6}  open alerts {open_alerts:3d}  "
            f"(events {service.totals.events})   "
        )
        sys.stdout.flush()


async def run_demo(settings: Settings, port: int) -> int:
    rng = random.Random()
    configure_logging("WARNING", settings.log_format)  # keep the status line readable
    with ThreadedMongoSim(port=port) as sim:
        demo = settings.model_copy(
            update={"mongodb_uri": SecretStr(sim.uri), "log_level": "WARNING"}
        )
        client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
        db = client[demo.database]
        try:
            service = Service(demo)
            install_signal_handlers(service)
            runner = asyncio.create_task(service.run())
            await service.ready.wait()
            await seed(db, rng)
            print(f"mongosim at {sim.uri}; database {demo.database!r}")
            print(f"metrics at http://127.0.0.1:{service.http.port}/metrics  (Ctrl-C stops)")
            generator = asyncio.create_task(traffic(db, rng, service.stopping))
            status = asyncio.create_task(status_line(service, service.stopping))
            code = await runner
            service.stopping.set()
            await asyncio.gather(generator, status, return_exceptions=True)
            print("\nstopped")
            return code
        finally:
            client.close()

"""``streamer demo`` (what ``make run`` runs): the whole thing on an embedded mongosim.

Imported only by ``streamer demo``: mongosim is its own distribution, which the service
does not depend on. Starts mongosim on a thread, seeds users, products and orders, runs
the service and a small traffic generator, and prints the /metrics URL and a one-line
live status until Ctrl-C; then stops the generator, the service (gracefully) and
mongosim.

The service's logs go to a file named at start, so they never overwrite the status
line. That file, and the keys and passwords of ``--auth``/``--tls``, live in one
temporary directory that goes when the demo ends, however it ends; ``--keep-logs``
keeps the log (and only the log). Any failure before the service is ready (a port in
use, a bad schema file) ends the demo at once with the service's one-line error.

``--auth`` and ``--tls`` (``make run AUTH=1 TLS=1``) turn on mongosim's authentication
and TLS and run the service as the README's least-privilege role: see
:mod:`streamer.commands.demo_secure`. ``--members 3`` (``make run MEMBERS=3``) makes
mongosim a three-member replica set on ``--port`` and the next two ports; the service and
the writer get a URI that lists all three with ``replicaSet``, and follow the primary.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from mongosim.threaded import ThreadedMongoSim
from pydantic import SecretStr

from ..core.errors import SettingsError
from ..core.lag import lag_seconds
from ..logs import configure_logging
from ..mongo import Mongo
from ..runtime.lifecycle import any_done, first_of, sleep_unless_stopped
from ..runtime.supervisor import Service, install_signal_handlers
from ..settings import Settings
from . import demo_secure, terminal

STATUSES = ("completed", "completed", "pending", "cancelled")


async def seed(db: Mongo, rng: random.Random, users: int = 50, products: int = 20) -> None:
    now = dt.datetime.now(dt.UTC)
    await db.insert_many(
        "users",
        [
            {
                "_id": f"user-{i}",
                "name": f"User {i}",
                "email": f"user{i}@example.com",
                "created_at": now,
                "active": True,
            }
            for i in range(users)
        ],
    )
    await db.insert_many(
        "inventory",
        [
            {
                "_id": f"product-{i}",
                "sku": f"SKU-{i:03}",
                "name": f"Product {i}",
                "stock": rng.randrange(5, 60),
            }
            for i in range(products)
        ],
    )
    await db.insert_many("orders", [order(rng, users) for _ in range(200)])


def order(rng: random.Random, users: int) -> dict[str, Any]:
    return {
        "user_id": f"user-{rng.randrange(users)}",
        "amount": round(rng.uniform(5, 200), 2),
        "status": rng.choice(STATUSES),
        "created_at": dt.datetime.now(dt.UTC),
    }


async def traffic(db: Mongo, rng: random.Random, stopping: asyncio.Event, users: int = 50) -> None:
    """A few dozen writes a second: orders placed and completed, stock sold and restocked."""
    while not stopping.is_set():
        choice = rng.random()
        product = f"product-{rng.randrange(20)}"
        if choice < 0.5:
            await db.insert_many("orders", [order(rng, users)])
            await db.update_one(
                "inventory", {"_id": product}, {"$inc": {"stock": -rng.randrange(1, 4)}}
            )
        elif choice < 0.8:
            await db.update_one("orders", {"status": "pending"}, {"$set": {"status": "completed"}})
        else:
            await db.update_one(
                "inventory", {"_id": product, "stock": {"$lt": 15}}, {"$inc": {"stock": 40}}
            )
        await sleep_unless_stopped(stopping, 0.03)


def demo_lag(service: Service) -> str:
    """The largest lag of the streams this instance owns, as /metrics computes it: the
    same views (Health.stream_views), the same function, the same clock."""
    now = service.metrics.streams.clock()
    views = service.health.stream_views()
    lags = [lag for v in views if v.owned if (lag := lag_seconds(v.position, now)) is not None]
    return f"{max(lags):.1f}s" if lags else "-"


async def status_line(service: Service, stopping: asyncio.Event) -> None:
    last_events, last_time = 0, time.monotonic()
    while not stopping.is_set():
        await sleep_unless_stopped(stopping, 1.0)
        now = time.monotonic()
        rate = (service.totals.events - last_events) / (now - last_time)
        last_events, last_time = service.totals.events, now
        lag = demo_lag(service)
        open_alerts = len(service.metrics.alert_products.products)
        sys.stdout.write(
            f"\r{rate:7.1f} events/s  lag {lag:>6}  open alerts {open_alerts:3d}  "
            f"(events {service.totals.events})   "
        )
        sys.stdout.flush()


class Workdir:
    """The demo's one temporary directory: its log, and with ``--auth``/``--tls`` the keys
    and ``streamer.env``. Removed when the demo ends, however it ends (a stop, a failed
    start, Ctrl-C, a forced stop); with ``--keep-logs`` only the log stays."""

    LOG = "streamer.log"

    def __init__(self, keep_logs: bool) -> None:
        # mkdtemp: private to the user (0700), under TMPDIR, never in the repository.
        self.path = Path(tempfile.mkdtemp(prefix="streamer-demo-"))
        self.log = self.path / self.LOG
        self.keep_logs = keep_logs
        self.closed = False

    def open_log(self) -> TextIO:
        return open(self.log, "w", buffering=1)  # line-buffered: a forced stop loses none

    def close(self) -> None:
        """Remove it (all but the log with ``--keep-logs``). Quick, synchronous and
        idempotent: the forced stop calls it too, just before ``os._exit``."""
        if self.closed:
            return
        self.closed = True
        if not self.keep_logs:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for entry in self.path.iterdir():  # keys and passwords never outlive the demo
            if entry == self.log:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def start_mongosim(port: int, members: int = 1, **options: Any) -> ThreadedMongoSim:
    """mongosim on ``port`` (a set of ``members`` on it and the ports after it)."""
    try:
        return ThreadedMongoSim(port=port, members=members, **options).start()
    except OSError as exc:
        where = f"port {port}" if members == 1 or not port else f"ports {port}-{port + members - 1}"
        raise SettingsError(
            f"cannot start mongosim on {where} (--port, MONGOSIM_PORT for make run): "
            f"{exc.strerror or exc}"
        ) from None


async def run_demo(
    settings: Settings,
    port: int,
    *,
    auth: bool = False,
    tls: bool = False,
    keep_logs: bool = False,
    members: int = 1,
) -> int:
    if tls:  # before anything is made or printed: then the error is the only line
        demo_secure.require_cryptography()
    rng = random.Random()
    workdir = Workdir(keep_logs)
    give_back_terminal = terminal.foreground()

    def on_force() -> None:  # a second Ctrl-C: what must not outlive even that
        workdir.close()
        give_back_terminal()

    try:
        with workdir.open_log() as log_file:
            configure_logging(settings.log_level, "json", stream=log_file)
            print(f"logs: {workdir.log}")
            return await _secured_demo(
                settings, port, members, auth, tls, workdir.path, rng, on_force
            )
    finally:
        workdir.close()
        if keep_logs:
            print(f"logs kept: {workdir.log}")
        give_back_terminal()


async def _secured_demo(
    settings: Settings,
    port: int,
    members: int,
    auth: bool,
    tls: bool,
    directory: Path,
    rng: random.Random,
    on_force: Callable[[], None],
) -> int:
    """mongosim (with ``--auth``/TLS as asked), its users, then the demo itself."""
    certs = demo_secure.make_certs(directory) if tls else None
    if certs is not None:
        print(f"tls: a throw-away CA, a server and a client certificate in {directory}")
    options = demo_secure.mongosim_options(certs, auth)
    sim = await asyncio.to_thread(start_mongosim, port, members, **options)
    try:
        on = [f for f, i in (("--auth", auth), ("TLS, client certificates", tls)) if i]
        if members > 1:
            on.insert(0, f"{members} members")
        print(f"mongosim at {sim.uri}" + (f" with {' and '.join(on)}" if on else ""))
        anonymous = settings.model_copy(
            update={"mongodb_uri": SecretStr(sim.uri), **demo_secure.tls_settings(certs)}
        )
        if not auth:
            return await _demo(anonymous, anonymous, rng, on_force)
        users = await demo_secure.set_up_users(anonymous, directory)
        print(f"the service runs as {demo_secure.SERVICE_USER!r}, the demo writes as root")
        return await _demo(users.service, users.root, rng, on_force)
    finally:
        await asyncio.to_thread(sim.stop)


async def _demo(
    settings: Settings, writer: Settings, rng: random.Random, on_force: Callable[[], None]
) -> int:
    """The service on ``settings``; the seed and the traffic written with ``writer``."""
    service = Service(settings)
    install_signal_handlers(service, on_force)
    runner = asyncio.create_task(service.run(), name="service")
    await first_of(any_done(runner), service.ready.wait())
    if not service.ready.is_set():  # the service ended before it was ready: its error is the answer
        return await runner
    helpers: list[asyncio.Task[None]] = []
    try:
        async with Mongo(writer.mongo_options()) as db:
            try:
                await seed(db, rng)
                print(f"database {settings.database!r} seeded: users, products and orders")
                print(f"metrics at http://127.0.0.1:{service.http.port}/metrics  (Ctrl-C stops)")
                helpers += [
                    asyncio.create_task(traffic(db, rng, service.stopping), name="traffic"),
                    asyncio.create_task(status_line(service, service.stopping), name="status"),
                ]
                await any_done(runner, *helpers)
            finally:
                service.stop()  # a no-op after Ctrl-C; otherwise something ended early
                if helpers:  # they use db: done before it closes
                    await asyncio.wait(helpers)
    finally:
        service.stop()
        await asyncio.wait({runner})
    print("\nstopped")
    for task in helpers:
        failure = task.exception()
        if failure is not None:
            raise failure
    return runner.result()

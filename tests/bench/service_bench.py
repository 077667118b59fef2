"""streamer's benchmarks: `make bench` (never part of `make test`).

One mongosim process; the service runs as its own process (`python -m streamer run`),
as deployed; the load generator and the baselines run in this process. Prints a table
and writes bench-results.json.

    python tests/bench/service_bench.py [--quick] [--events 20000] [--soak 200000] [--uri URI]

The drain is a backlog drain: the service streams, is stopped, the workload is written,
and the service is started again. The clock and the CPU counters (service and server,
from /proc) start when the restarted service's HTTP endpoint first answers (imports
done; connecting, bootstrap and resuming the stream are counted) and stop when both
checkpoints cover the last write. "overlap" is the two CPU shares summed, in cores:
1.0 means service and server took turns; more means they worked at the same time.
Two workloads: ``insert`` (orders by 200 users) and ``mixed`` (inserts, status and
amount changes, orders moving between users, deletes, inventory changes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from bson import Timestamp
from motor.motor_asyncio import AsyncIOMotorClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mongosim.process import MongoSimProcess  # noqa: E402

from tests.support.polling import eventually  # noqa: E402
from tests.support.service import caught_up  # noqa: E402
from tests.support.service_process import ServiceProcess  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


USERS = 200


def orders(n: int, start: int = 0, users: int = USERS, hot: bool = False) -> list[dict[str, Any]]:
    """Orders spread over ``users``; ``hot``: every third one is user 0's (a hot user whose
    orders land in every partition of a split stream)."""
    return [
        {
            "_id": start + i,
            "user_id": 0 if hot and (start + i) % 3 == 0 else (start + i) % users,
            "amount": 10,
            "status": "completed",
        }
        for i in range(n)
    ]


async def write_orders(db: Any, n: int, start: int = 0, batch: int = 500) -> Timestamp:
    """Insert ``n`` orders in batches; the cluster time of the last write."""
    for offset in range(0, n, batch):
        await db.orders.insert_many(orders(min(batch, n - offset), start + offset))
    reply = await db.command("ping")
    return reply["operationTime"]  # type: ignore[no-any-return]


async def caught_up_at(
    db: Any, target: Timestamp, within_s: float = 600, streams: tuple[str, ...] = ("orders",)
) -> float:
    """Wait until the streams' checkpoints cover ``target``; the time it was seen."""
    await caught_up(db, streams, within_s, at=target)
    return time.perf_counter()


async def streaming(db: Any, within_s: float = 60) -> None:
    async def both() -> bool:
        return bool(await db.streamer_checkpoints.count_documents({"phase": "stream"}) >= 2)

    await eventually(both, what="the service streaming", within_s=within_s, interval_s=0.02)


async def round_trips(http_port: int) -> float:
    """Commands the service has sent so far (its command-duration histogram's count)."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{http_port}/metrics") as response,
    ):
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamer_mongodb_command_duration_seconds_count")
    )


# -- workloads ------------------------------------------------------------------------------
async def write_mixed(db: Any, n: int, hot: bool = False) -> int:
    """About ``n`` change events of every kind on orders and inventory; how many exactly.

    ``hot``: a third of the orders are user 0's, and stay hers (moves skip them)."""
    events = 0
    block = 500
    products = max(n // 10, 10)
    for offset in range(0, products, block):
        docs = [
            {
                "_id": f"p{i}",
                "sku": f"S{i}",
                "name": f"product {i}",
                "stock": 100,
                "low_stock_threshold": 10,
            }
            for i in range(offset, min(products, offset + block))
        ]
        await db.inventory.insert_many(docs)
        events += len(docs)
    n_orders = max(n * 3 // 10, block)
    for offset in range(0, n_orders, block):
        docs = orders(min(block, n_orders - offset), offset, hot=hot)
        for d in docs:
            d["status"] = "pending" if d["_id"] % 3 else "completed"
        await db.orders.insert_many(docs)
        events += len(docs)
    ranges = [(lo, min(lo + block, n_orders)) for lo in range(0, n_orders, block)]
    for lo, hi in ranges:  # status changes, amount changes, moves to another user
        window = {"_id": {"$gte": lo, "$lt": hi}}
        r = await db.orders.update_many(window, {"$set": {"status": "completed"}})
        events += r.modified_count
        r = await db.orders.update_many(window, {"$inc": {"amount": 5}})
        events += r.modified_count
        moved: dict[str, Any] = {"_id": {"$gte": lo, "$lt": lo + block // 2}}
        if hot:
            moved["user_id"] = {"$ne": 0}
        r = await db.orders.update_many(moved, {"$set": {"user_id": lo % USERS + 1}})
        events += r.modified_count
    for offset in range(0, products, block):  # stock falls below the threshold, and back
        window = {"_id": {"$in": [f"p{i}" for i in range(offset, min(products, offset + block))]}}
        for change in (-95, 50):
            r = await db.inventory.update_many(window, {"$inc": {"stock": change}})
            events += r.modified_count
    for lo, hi in ranges:  # a fifth of the orders are deleted
        r = await db.orders.delete_many({"_id": {"$gte": lo, "$lt": lo + (hi - lo) // 5}})
        events += r.deleted_count
    return events


async def write_workload(db: Any, workload: str, n: int) -> tuple[int, Timestamp]:
    """Write the workload; the number of change events and the cluster time of the last."""
    if workload == "insert":
        return n, await write_orders(db, n)
    events = await write_mixed(db, n)
    reply = await db.command("ping")
    return events, reply["operationTime"]


# -- raw change-stream read rate -----------------------------------------------------------
async def raw_read(uri: str, driver: str, workload: str, n: int) -> float:
    """A bare consumer that only iterates events (backlog, whole database): the ceiling."""
    if driver == "pymongo":
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(uri)
    else:
        client = AsyncIOMotorClient(uri)
    name = f"raw_{driver}_{workload}"
    db = client[name]
    start_at = (await db.command("ping"))["operationTime"]
    events, _ = await write_workload(db, workload, n)
    started = time.perf_counter()
    seen = 0
    stream = db.watch(start_at_operation_time=start_at, batch_size=2000)
    if driver == "pymongo":
        stream = await stream
    async with stream:
        async for _ in stream:
            seen += 1
            if seen == events:
                break
    elapsed = time.perf_counter() - started
    await client.drop_database(name)
    result = client.close()
    if asyncio.iscoroutine(result):
        await result
    return events / elapsed


# -- streamer: backlog drain ---------------------------------------------------------------
async def metrics_up(http_port: int, within_s: float = 60) -> None:
    """Until the service's HTTP endpoint answers (polled every 10 ms)."""

    async def answers() -> bool:
        with contextlib.suppress(aiohttp.ClientError):
            await round_trips(http_port)
            return True
        return False

    await eventually(
        answers, what="the service's HTTP endpoint answering", within_s=within_s, interval_s=0.01
    )


async def drain(
    uri: str, server_pid: int | None, driver: str, workload: str, n: int
) -> dict[str, float]:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    name = f"drain_{driver}_{workload}"
    db = client[name]
    http_port = free_port()
    service = ServiceProcess(uri, name, driver=driver, http_port=http_port, batch_size=2000)
    await service.start()
    try:
        await streaming(db)
        await service.stop()
        events, last = await write_workload(db, workload, n)
        await service.start()
        assert service.proc is not None
        pid = service.proc.pid
        await metrics_up(http_port)
        server0 = cpu_seconds(server_pid) if server_pid else 0.0
        trips0, cpu0, started = await round_trips(http_port), cpu_seconds(pid), time.perf_counter()
        done = await caught_up_at(db, last, streams=("orders", "inventory"))
        server1 = cpu_seconds(server_pid) if server_pid else 0.0
        trips1, cpu1 = await round_trips(http_port), cpu_seconds(pid)
        wall = done - started
        service_cpu, server_cpu = cpu1 - cpu0, server1 - server0
        return {
            "events": events,
            "e2e_eps": events / wall,
            "cpu_us_per_event": service_cpu / events * 1e6,
            "server_cpu_us_per_event": server_cpu / events * 1e6 if server_pid else float("nan"),
            "service_cores": service_cpu / wall,
            "server_cores": server_cpu / wall,
            "overlap_cores": (service_cpu + server_cpu) / wall,
            "round_trips_per_1000_events": (trips1 - trips0) / events * 1000,
        }
    finally:
        await service.stop()
        await client.drop_database(name)
        client.close()


# -- the naive baseline --------------------------------------------------------------------
async def naive(uri: str, workload: str, n: int) -> float:
    """What a user writes first: one update_one per event, no batching, no transaction
    (on the same backlog as the drain; it keeps only counts, it is not exact)."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    name = f"naive_{workload}"
    db = client[name]
    start_at = (await db.command("ping"))["operationTime"]
    events, _ = await write_workload(db, workload, n)
    started = time.perf_counter()
    seen = 0
    async with db.watch(start_at_operation_time=start_at) as stream:
        async for event in stream:
            doc = event.get("fullDocument") or {}
            key = doc.get("user_id", event["documentKey"]["_id"])
            await db.derived.update_one(
                {"_id": key}, {"$inc": {"total": doc.get("amount", 0), "count": 1}}, upsert=True
            )
            seen += 1
            if seen == events:
                break
    elapsed = time.perf_counter() - started
    await client.drop_database(name)
    client.close()
    return events / elapsed


# -- periodic full recomputation -------------------------------------------------------------
async def merge_refresh(uri: str, n: int) -> float:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    db = client[f"merge_{n}"]
    await write_orders(db, n, batch=2000)
    pipeline = [
        {"$match": {"status": "completed"}},
        {"$group": {"_id": "$user_id", "total": {"$sum": "$amount"}, "count": {"$sum": 1}}},
        {"$merge": {"into": "user_totals", "whenMatched": "replace"}},
    ]
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        await db.orders.aggregate(pipeline).to_list(None)
        runs.append(time.perf_counter() - started)
    await client.drop_database(f"merge_{n}")
    client.close()
    return statistics.median(runs)


# -- freshness at a steady rate ------------------------------------------------------------------
async def freshness(uri: str, rate: int, seconds: float) -> tuple[float, float]:
    """Write one order per new user at ``rate``/s; time until its total is visible."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    name = "fresh"
    db = client[name]
    service = ServiceProcess(uri, name, http_port=free_port())
    await service.start()
    written: dict[int, float] = {}
    seen: dict[int, float] = {}
    try:
        await streaming(db)
        async with db.user_totals.watch([{"$match": {"operationType": "insert"}}]) as totals:
            count = int(rate * seconds)
            all_seen = asyncio.Event()

            async def observe() -> None:
                async for event in totals:
                    seen[event["documentKey"]["_id"]] = time.perf_counter()
                    if len(seen) >= count:
                        all_seen.set()

            watcher = asyncio.create_task(observe())
            interval = 1 / rate
            began = time.perf_counter()
            for i in range(count):
                target = began + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the load generator, not waiting on state
                await db.orders.insert_one(
                    {"_id": i, "user_id": 1_000_000 + i, "amount": 1, "status": "completed"}
                )
                written[1_000_000 + i] = time.perf_counter()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_seen.wait(), 30)
            watcher.cancel()
    finally:
        await service.stop()
        await client.drop_database(name)
        client.close()
    latencies = sorted((seen[u] - t) * 1000 for u, t in written.items() if u in seen)
    if len(latencies) < len(written):
        raise RuntimeError(f"only {len(latencies)} of {len(written)} totals became visible")
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99) - 1]


# -- memory soak -----------------------------------------------------------------------------
async def soak(uri: str, first: int, total: int) -> tuple[float, float]:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    name = "soak"
    db = client[name]
    service = ServiceProcess(uri, name, http_port=free_port(), batch_size=2000)
    await service.start()
    try:
        await streaming(db)
        assert service.proc is not None
        last = await write_orders(db, first, batch=2000)
        await caught_up_at(db, last)
        at_first = rss_mb(service.proc.pid)
        last = await write_orders(db, total - first, start=first, batch=2000)
        await caught_up_at(db, last)
        return at_first, rss_mb(service.proc.pid)
    finally:
        await service.stop()
        await client.drop_database(name)
        client.close()


WORKLOADS = ("insert", "mixed")
DRIVERS = ("motor", "pymongo")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sim = MongoSimProcess(oplog_size=max(500_000, args.soak + 50_000))
    if args.uri:
        sim.uri = args.uri  # a real replica set: nothing to start
    else:
        await sim.start()
    server_pid = None if args.uri else sim._proc.pid if sim._proc else None
    results: dict[str, Any] = {
        "server": "external" if args.uri else "mongosim",
        "events": args.events,
        "workloads": {},
    }
    try:
        for workload in [] if args.freshness_only else WORKLOADS:
            per_workload: dict[str, Any] = {"drivers": {}}
            per_workload["naive_eps"] = await naive(sim.uri, workload, args.naive_events)
            for driver in DRIVERS:
                per = {"raw_read_eps": await raw_read(sim.uri, driver, workload, args.events)}
                per.update(await drain(sim.uri, server_pid, driver, workload, args.events))
                per["e2e_over_raw"] = per["e2e_eps"] / per["raw_read_eps"]
                per["e2e_over_naive"] = per["e2e_eps"] / per_workload["naive_eps"]
                per_workload["drivers"][driver] = per
            results["workloads"][workload] = per_workload
        whole = not (args.quick or args.freshness_only)
        if whole:
            results["merge_refresh_s_10k"] = await merge_refresh(sim.uri, 10_000)
            results["merge_refresh_s_100k"] = await merge_refresh(sim.uri, args.merge_large)
        p50, p99 = await freshness(sim.uri, 500, args.fresh_seconds)
        results["freshness_p50_ms"], results["freshness_p99_ms"] = p50, p99
        if whole:
            results["rss_mb_50k"], results["rss_mb_200k"] = await soak(
                sim.uri, args.soak // 4, args.soak
            )
    finally:
        if not args.uri:
            await sim.stop()
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    results["command"] = " ".join(["python", *sys.argv])
    return results


ROWS: list[tuple[str, str, str]] = [
    # (label, key, format)
    ("raw change-stream read (events/s)", "raw_read_eps", "{:,.0f}"),
    ("streamer backlog drain (events/s)", "e2e_eps", "{:,.0f}"),
    ("service CPU (µs/event)", "cpu_us_per_event", "{:,.0f}"),
    ("server CPU (µs/event)", "server_cpu_us_per_event", "{:,.0f}"),
    ("overlap: service + server CPU (cores)", "overlap_cores", "{:.2f}"),
    ("e2e / raw read", "e2e_over_raw", "{:.2f}"),
    ("e2e / naive", "e2e_over_naive", "{:.1f}"),
    ("round trips per 1,000 events", "round_trips_per_1000_events", "{:,.1f}"),
]


def table(r: dict[str, Any]) -> str:
    out = [
        "| measure | insert, Motor | insert, PyMongo | mixed, Motor | mixed, PyMongo |",
        "|---|---:|---:|---:|---:|",
    ]
    if r["workloads"]:
        for label, key, fmt in ROWS:
            cells = [
                fmt.format(r["workloads"][w]["drivers"][d][key]) for w in WORKLOADS for d in DRIVERS
            ]
            out.append(f"| {label} | {' | '.join(cells)} |")
        naive_cells = [f"{r['workloads'][w]['naive_eps']:,.0f}" for w in WORKLOADS]
        out.append(f"| naive baseline (events/s) | {naive_cells[0]} | | {naive_cells[1]} | |")
    if "merge_refresh_s_10k" in r:
        out.append(f"| $merge refresh, 10k orders (s) | {r['merge_refresh_s_10k']:.2f} | | | |")
        out.append(f"| $merge refresh, 100k orders (s) | {r['merge_refresh_s_100k']:.2f} | | | |")
    out.append(
        "| freshness at 500 events/s p50 / p99 (ms) | "
        f"{r['freshness_p50_ms']:.0f} / {r['freshness_p99_ms']:.0f} | | | |"
    )
    if "rss_mb_50k" in r:
        growth = (r["rss_mb_200k"] / r["rss_mb_50k"] - 1) * 100
        out.append(
            "| service RSS after 50k / 200k events (MB) | "
            f"{r['rss_mb_50k']:.0f} / {r['rss_mb_200k']:.0f} ({growth:+.1f}%) | | | |"
        )
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="drains, baselines and freshness only (no $merge refresh, no memory soak)",
    )
    parser.add_argument(
        "--freshness-only",
        action="store_true",
        help="only freshness at 500 events/s, against a fresh mongosim (to repeat it alone)",
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--naive-events", type=int, default=5_000)
    parser.add_argument("--merge-large", type=int, default=100_000)
    parser.add_argument("--fresh-seconds", type=float, default=20.0)
    parser.add_argument("--soak", type=int, default=200_000)
    parser.add_argument("--output", default="bench-results.json")
    parser.add_argument(
        "--uri", help="benchmark against this replica set instead of a fresh mongosim"
    )
    parsed = parser.parse_args()
    results = asyncio.run(main(parsed))
    Path(parsed.output).write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"machine: {results['machine']}; wrote {parsed.output}")

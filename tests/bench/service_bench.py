"""streamer's benchmarks: `make bench` (never part of `make test`).

One mongosim process; the service runs as its own process (`python -m streamer run`),
as deployed; the load generator and the baselines run in this process. Prints a table
and writes bench-results.json.

    python tests/bench/service_bench.py [--events 20000] [--soak 200000] [--uri URI]
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

from tests.integration.service_process import ServiceProcess  # noqa: E402

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


def orders(n: int, start: int = 0, users: int = 1000) -> list[dict[str, Any]]:
    return [
        {"_id": start + i, "user_id": (start + i) % users, "amount": 10, "status": "completed"}
        for i in range(n)
    ]


async def write_orders(db: Any, n: int, start: int = 0, batch: int = 500) -> Timestamp:
    """Insert ``n`` orders in batches; the cluster time of the last write."""
    for offset in range(0, n, batch):
        await db.orders.insert_many(orders(min(batch, n - offset), start + offset))
    reply = await db.command("ping")
    return reply["operationTime"]  # type: ignore[no-any-return]


async def caught_up(db: Any, target: Timestamp, within_s: float = 600) -> float:
    """Wait until the orders checkpoint covers ``target``; the time it was seen."""
    deadline = time.monotonic() + within_s
    while True:
        cp = await db.streamer_checkpoints.find_one({"_id": "orders"})
        if cp and cp.get("phase") == "stream" and cp.get("position") and cp["position"] >= target:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise TimeoutError(f"not caught up to {target}: {cp}")
        await asyncio.sleep(0.005)


async def streaming(db: Any, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while True:
        if await db.streamer_checkpoints.count_documents({"phase": "stream"}) >= 2:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the service never started streaming")
        await asyncio.sleep(0.02)


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


# -- raw change-stream read rate -----------------------------------------------------------
async def raw_read(uri: str, driver: str, n: int) -> float:
    """A bare consumer that only iterates events: the practical ceiling."""
    if driver == "pymongo":
        from pymongo import AsyncMongoClient

        client: Any = AsyncMongoClient(uri)
    else:
        client = AsyncIOMotorClient(uri)
    db = client[f"raw_{driver}"]
    start_at = (await db.command("ping"))["operationTime"]
    await write_orders(db, n)
    started = time.perf_counter()
    seen = 0
    stream = db.orders.watch(start_at_operation_time=start_at, batch_size=1000)
    if driver == "pymongo":
        stream = await stream
    async with stream:
        async for _ in stream:
            seen += 1
            if seen == n:
                break
    elapsed = time.perf_counter() - started
    await client.drop_database(f"raw_{driver}")
    result = client.close()
    if asyncio.iscoroutine(result):
        await result
    return n / elapsed


# -- streamer end to end -------------------------------------------------------------------
async def end_to_end(uri: str, driver: str, n: int) -> dict[str, float]:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    name = f"e2e_{driver}"
    db = client[name]
    http_port = free_port()
    service = ServiceProcess(uri, name, driver=driver, http_port=http_port, batch_size=2000)
    await service.start()
    try:
        await streaming(db)
        assert service.proc is not None
        pid = service.proc.pid
        trips0, cpu0 = await round_trips(http_port), cpu_seconds(pid)
        started = time.perf_counter()
        last = await write_orders(db, n)
        done = await caught_up(db, last)
        trips1, cpu1 = await round_trips(http_port), cpu_seconds(pid)
        return {
            "e2e_eps": n / (done - started),
            "cpu_us_per_event": (cpu1 - cpu0) / n * 1e6,
            "round_trips_per_1000_events": (trips1 - trips0) / n * 1000,
        }
    finally:
        await service.stop()
        await client.drop_database(name)
        client.close()


# -- the naive baseline --------------------------------------------------------------------
async def naive(uri: str, n: int) -> float:
    """What a user writes first: one update_one per event, no batching, no transaction."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    db = client.naive
    start_at = (await db.command("ping"))["operationTime"]
    writer = asyncio.create_task(write_orders(db, n))
    started = time.perf_counter()
    seen = 0
    async with db.orders.watch(start_at_operation_time=start_at) as stream:
        async for event in stream:
            doc = event["fullDocument"]
            await db.user_totals.update_one(
                {"_id": doc["user_id"]}, {"$inc": {"total": doc["amount"], "count": 1}}, upsert=True
            )
            seen += 1
            if seen == n:
                break
    elapsed = time.perf_counter() - started
    await writer
    await client.drop_database("naive")
    client.close()
    return n / elapsed


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
        await caught_up(db, last)
        at_first = rss_mb(service.proc.pid)
        last = await write_orders(db, total - first, start=first, batch=2000)
        await caught_up(db, last)
        return at_first, rss_mb(service.proc.pid)
    finally:
        await service.stop()
        await client.drop_database(name)
        client.close()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    sim = MongoSimProcess(oplog_size=max(500_000, args.soak + 50_000))
    if args.uri:
        sim.uri = args.uri  # a real replica set: nothing to start
    else:
        await sim.start()
    results: dict[str, Any] = {"drivers": {}, "server": "external" if args.uri else "mongosim"}
    try:
        for driver in ("motor", "pymongo"):
            per = {"raw_read_eps": await raw_read(sim.uri, driver, args.events)}
            per.update(await end_to_end(sim.uri, driver, args.events))
            results["drivers"][driver] = per
        motor = results["drivers"]["motor"]
        results.update({k: motor[k] for k in motor})
        results["naive_eps"] = await naive(sim.uri, args.naive_events)
        results["merge_refresh_s_10k"] = await merge_refresh(sim.uri, 10_000)
        results["merge_refresh_s_100k"] = await merge_refresh(sim.uri, args.merge_large)
        p50, p99 = await freshness(sim.uri, 500, args.fresh_seconds)
        results["freshness_p50_ms"], results["freshness_p99_ms"] = p50, p99
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


def table(r: dict[str, Any]) -> str:
    d = r["drivers"]
    rows = [
        (
            "raw change-stream read (events/s)",
            f"{d['motor']['raw_read_eps']:,.0f}",
            f"{d['pymongo']['raw_read_eps']:,.0f}",
        ),
        (
            "streamer end to end (events/s)",
            f"{d['motor']['e2e_eps']:,.0f}",
            f"{d['pymongo']['e2e_eps']:,.0f}",
        ),
        (
            "service CPU (µs/event)",
            f"{d['motor']['cpu_us_per_event']:,.0f}",
            f"{d['pymongo']['cpu_us_per_event']:,.0f}",
        ),
        (
            "round trips per 1,000 events",
            f"{d['motor']['round_trips_per_1000_events']:,.1f}",
            f"{d['pymongo']['round_trips_per_1000_events']:,.1f}",
        ),
        ("naive baseline (events/s)", f"{r['naive_eps']:,.0f}", ""),
        ("$merge refresh, 10k orders (s)", f"{r['merge_refresh_s_10k']:.2f}", ""),
        ("$merge refresh, 100k orders (s)", f"{r['merge_refresh_s_100k']:.2f}", ""),
        (
            "freshness at 500 events/s p50 / p99 (ms)",
            f"{r['freshness_p50_ms']:.0f} / {r['freshness_p99_ms']:.0f}",
            "",
        ),
        (
            "service RSS after 50k / 200k events (MB)",
            f"{r['rss_mb_50k']:.0f} / {r['rss_mb_200k']:.0f}",
            "",
        ),
    ]
    out = ["| measure | Motor | PyMongo async |", "|---|---:|---:|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
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

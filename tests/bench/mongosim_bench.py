"""mongosim throughput through Motor: `make bench` (never part of `make test`).

mongosim runs in its own process (as in tests and `make run`), so server and client each
get a core of this 2-core machine. Every figure is operations completed per second of
wall-clock time, with CLIENTS concurrent coroutines per client process.

    python tests/bench/mongosim_bench.py [--sizes 1000,100000] [--ops 20000] [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mongosim.process import MongoSimProcess
from motor.motor_asyncio import AsyncIOMotorClient

CLIENTS = 32


async def _run_concurrently(n_ops: int, op: Callable[[int], Awaitable[Any]]) -> float:
    """Run ``n_ops`` calls of ``op`` over CLIENTS coroutines; return ops per second."""
    counter = iter(range(n_ops))

    async def worker() -> None:
        for i in counter:
            await op(i)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return n_ops / (time.perf_counter() - start)


async def _client_job(
    uri: str, coll_name: str, kind: str, n_ops: int, size: int, seed: int
) -> float:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri, maxPoolSize=CLIENTS)
    coll = client.bench[coll_name]
    rng = random.Random(seed)
    try:
        await client.admin.command("ping")
        if kind == "insert":
            return await _run_concurrently(n_ops, lambda i: coll.insert_one({"seed": seed, "i": i}))
        if kind == "find":
            return await _run_concurrently(
                n_ops, lambda i: coll.find_one({"_id": rng.randrange(size)})
            )
        if kind == "upsert":
            return await _run_concurrently(
                n_ops,
                lambda i: coll.update_one(
                    {"_id": f"k{rng.randrange(1000)}"}, {"$inc": {"n": 1}}, upsert=True
                ),
            )
        raise ValueError(kind)
    finally:
        client.close()


def _client_process(args: tuple[str, str, str, int, int, int]) -> float:
    return asyncio.run(_client_job(*args))


def _parallel(uri: str, coll: str, kind: str, n_ops: int, size: int, procs: int) -> float:
    """The same job in ``procs`` client processes at once; the summed rate."""
    per_proc = n_ops // procs
    jobs = [(uri, coll, kind, per_proc, size, seed) for seed in range(procs)]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        pool.map(_client_process, jobs)
    return per_proc * procs / (time.perf_counter() - start)


async def _preload(uri: str, coll_name: str, size: int) -> None:
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    coll = client.bench[coll_name]
    await coll.drop()
    for start in range(0, size, 5000):
        await coll.insert_many(
            [
                {"_id": i, "v": i % 97, "name": f"doc-{i}"}
                for i in range(start, min(size, start + 5000))
            ]
        )
    client.close()


async def _stream_rate(uri: str, coll_name: str, n_events: int) -> tuple[float, float]:
    """(write rate, delivery rate): one writer inserting, one change stream reading."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri, maxPoolSize=CLIENTS)
    coll = client.bench[coll_name]
    try:
        async with coll.watch(max_await_time_ms=200) as stream:
            received = 0
            start = time.perf_counter()
            counter = iter(range(n_events))

            async def writer() -> None:
                for i in counter:
                    await coll.insert_one({"cs": i})

            writers = asyncio.gather(*(writer() for _ in range(CLIENTS)))
            async for _event in stream:
                received += 1
                if received == n_events:
                    break
            await writers
            elapsed = time.perf_counter() - start
        return n_events / elapsed, received / elapsed
    finally:
        client.close()


async def _backlog_read_rate(uri: str, coll_name: str, n_events: int) -> float:
    """Change-stream delivery capacity: events already in the oplog, read by one stream."""
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri)
    coll = client.bench[coll_name]
    try:
        start_at = (await client.admin.command("ping"))["operationTime"]
        for first in range(0, n_events, 1000):
            await coll.insert_many([{"backlog": i} for i in range(first, first + 1000)])
        received = 0
        start = time.perf_counter()
        async with coll.watch(start_at_operation_time=start_at, batch_size=1000) as stream:
            async for _event in stream:
                received += 1
                if received == n_events:
                    break
        return received / (time.perf_counter() - start)
    finally:
        client.close()


async def _server_side(size: int, n_ops: int) -> tuple[float, float, float]:
    """Server-side capacity: OP_MSG bytes in → decode, execute, encode reply → bytes out,
    without sockets or a driver (what one mongosim core can serve when clients keep up)."""
    import uuid

    import bson
    from bson.binary import Binary
    from mongosim.operation import CommandContext
    from mongosim.server import Connection, MongoSim, Server
    from mongosim.wire import Header, decode_request, encode_reply

    sim = MongoSim()
    await sim.start()
    assert sim.topology is not None
    server = Server(sim.engine, sim.topology, sim.failpoints, sim.auth)
    conn = Connection(server, set())
    lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
    ctx = CommandContext(0, None)
    for start in range(0, size, 5000):
        docs = [{"_id": i, "v": i % 97} for i in range(start, min(size, start + 5000))]
        await sim.engine.run_command("b", {"insert": "c", "documents": docs}, ctx)

    def message(cmd: dict[str, Any]) -> tuple[Header, bytes]:
        body = bson.encode({**cmd, "$db": "b", "lsid": lsid})
        msg = (0).to_bytes(4, "little") + b"\x00" + body
        return Header(16 + len(msg), 1, 0, 2013), msg

    async def rate(commands: list[dict[str, Any]]) -> float:
        frames = [message(c) for c in commands]
        start = time.perf_counter()
        for header, body in frames:
            request = decode_request(header, body)
            reply = await server.handle(request, conn)
            assert reply is not None and reply["ok"] == 1.0
            encode_reply(request, reply, request_id=1)
        return len(frames) / (time.perf_counter() - start)

    try:
        inserts = await rate(
            [{"insert": "c", "documents": [{"_id": f"n{i}", "v": i}]} for i in range(n_ops)]
        )
        finds = await rate(
            [
                {"find": "c", "filter": {"_id": i % size}, "limit": 1, "singleBatch": True}
                for i in range(n_ops)
            ]
        )
        upserts = await rate(
            [
                {
                    "update": "c",
                    "updates": [
                        {"q": {"_id": f"k{i % 1000}"}, "u": {"$inc": {"n": 1}}, "upsert": True}
                    ],
                }
                for i in range(n_ops)
            ]
        )
    finally:
        await sim.close()
    return inserts, finds, upserts


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    proc = MongoSimProcess(oplog_size=1_000_000)
    await proc.start()
    rows = []
    try:
        for size in (int(s) for s in args.sizes.split(",")):
            name = f"c{size}"
            await _preload(proc.uri, name, size)
            insert = _parallel(proc.uri, name, "insert", args.ops // 2, size, args.procs)
            find = _parallel(proc.uri, name, "find", args.ops, size, args.procs)
            upsert = _parallel(proc.uri, name, "upsert", args.ops // 2, size, args.procs)
            written, delivered = await _stream_rate(proc.uri, name, args.ops // 2)
            backlog = await _backlog_read_rate(proc.uri, name, args.ops)
            rows.append((size, insert, find, upsert, written, delivered, backlog))
    finally:
        await proc.stop()
    header = (
        "docs",
        "insert_one/s",
        "find _id/s",
        "$inc upsert/s",
        "cs writes/s",
        "cs events/s",
        "cs backlog read/s",
    )
    print(
        f"Through Motor ({args.procs} client processes x {CLIENTS} coroutines, "
        "mongosim in its own process):"
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for size, *rates in rows:
        print(f"| {size:,} | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    print("\nServer-side capacity (wire bytes in, reply bytes out, no driver):")
    print("| docs | insert/s | find _id/s | $inc upsert/s |")
    print("|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        server_rates = await _server_side(size, args.ops)
        print(f"| {size:,} | " + " | ".join(f"{r:,.0f}" for r in server_rates) + " |")


if __name__ == "__main__":
    asyncio.run(main())

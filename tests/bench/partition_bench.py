"""mongosim's CPU per change event: one unfiltered stream vs P partitioned streams.

Never part of ``make test``. mongosim runs in its own process; its CPU time (user +
system, from /proc) is read before and after the streams drain a backlog, and divided by
the number of change events written. Each case writes its own backlog, so no case reads
hashes cached by an earlier one.

    python tests/bench/partition_bench.py [--events 20000] [--partitions 8]

Cases: ``unfiltered`` (one stream, no pipeline; then with the partitions' ``$project``);
``P=1`` and ``P=n`` (n streams with the partition filter of issue 19, pushed to the
oplog scan); ``P=n, not pushed`` (the same filter spelled with ``$$ROOT``, which mongosim
does not push: every stream builds every event, then filters it), to show what the
pushdown saves.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from mongosim.process import MongoSimProcess
from motor.motor_asyncio import AsyncIOMotorClient

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _pipeline(p: int, i: int, *, pushed: bool) -> list[dict[str, Any]]:
    key = "$documentKey._id" if pushed else "$$ROOT.documentKey._id"
    hashed = {"$mod": [{"$abs": {"$toHashedIndexKey": key}}, p]}
    match = {"$or": [{"documentKey": {"$exists": False}}, {"$expr": {"$eq": [hashed, i]}}]}
    return [{"$match": match}, {"$project": {"updateDescription": 0}}]


async def _backlog(coll: Any, n_events: int) -> Any:
    """Inserts and updates (n_events in all), then a drop that ends every stream."""
    start = (await coll.database.command({"find": coll.name, "filter": {}}))["operationTime"]
    n_docs = n_events // 2
    for first in range(0, n_docs, 1000):
        await coll.insert_many([{"_id": i, "n": 0} for i in range(first, first + 1000)])
    for first in range(0, n_docs, 1000):
        await coll.update_many({"_id": {"$gte": first, "$lt": first + 1000}}, {"$inc": {"n": 1}})
    await coll.drop()
    return start


async def _drain(coll: Any, pipeline: list[dict[str, Any]], start: Any) -> int:
    received = 0
    async with coll.watch(pipeline, start_at_operation_time=start, batch_size=1000) as stream:
        async for event in stream:
            if event["operationType"] == "invalidate":
                return received
            received += 1
    return received


async def _case(
    client: Any, pid: int, name: str, pipelines: list[list[dict[str, Any]]], n: int
) -> None:
    coll = client.bench["c" + "".join(ch for ch in name if ch.isalnum())]
    start = await _backlog(coll, n)
    before = _cpu_s(pid)
    counts = await asyncio.gather(*(_drain(coll, p, start) for p in pipelines))
    cpu = _cpu_s(pid) - before
    crud = sum(counts) - len(pipelines)  # each stream also received the drop
    print(f"{name:<22} {len(pipelines):>7} {crud:>8} {cpu * 1e6 / n:>14.1f}")


async def main(n_events: int, partitions: int) -> None:
    server = MongoSimProcess(oplog_size=4 * n_events)
    await server.start()
    assert server.pid is not None
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(server.uri)
    try:
        p = partitions
        print(f"{n_events} change events (inserts, updates), then a drop")
        print(f"{'case':<22} {'streams':>7} {'events':>8} {'mongosim µs/ev':>14}")
        await _case(client, server.pid, "unfiltered", [[]], n_events)
        project = [{"$project": {"updateDescription": 0}}]
        await _case(client, server.pid, "unfiltered, $project", [project], n_events)
        await _case(client, server.pid, "P=1", [_pipeline(1, 0, pushed=True)], n_events)
        pushed = [_pipeline(p, i, pushed=True) for i in range(p)]
        await _case(client, server.pid, f"P={p}", pushed, n_events)
        not_pushed = [_pipeline(p, i, pushed=False) for i in range(p)]
        await _case(client, server.pid, f"P={p}, not pushed", not_pushed, n_events)
    finally:
        client.close()
        await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.partitions))

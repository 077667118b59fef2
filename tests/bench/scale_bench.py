"""The scale section of ``make bench`` (issue 19): partitions shared by several instances.

Never part of ``make test``. For each P in {1, 2, 4, 8} and each N in {1, 2, 4}
instances, a fresh mongosim process and N ``python -m streamer run`` processes
(instances "a", "b", ...; ``partitions=P``) drain a backlog of about 20,000 change events
(the ``mixed`` workload of service_bench.py: inserts, status and amount changes, orders
moving between users, deletes, inventory changes). Prints a table and adds a ``scale``
entry to bench-results.json.

    python tests/bench/scale_bench.py [--quick] [--events 20000] [--output bench-results.json]

**How the backlog drain is staged, and why.** All N instances are started, and the bench
waits until the split has settled: every partition key of both streams leased, each
instance holding between P//N and ceil(P/N) of each stream's partitions, every partition
past its first resync. Then every instance is paused with SIGSTOP, the backlog is written
from this process, and all are resumed together with SIGCONT. Clock and CPU counters
(every instance and mongosim, user + system from /proc) run from the SIGCONT until every
partition's checkpoint covers the last write. This is the single-instance bench's
backlog drain, for N processes: the CPU figures hold only the drain (not mongosim's
work of taking the writes, not the instances' start-up or the settling of the split), and
the split the drain starts from is the settled one. Stopping the instances instead (as
the single-instance bench does) would not do: a restart re-deals the partitions while
the backlog drains. Writing the backlog while they run would mix the writes' server CPU
into the drain's. A paused instance still holds its leases, so the drain runs use a
lease TTL of 60 s, well above the time the backlog takes to write (the bench checks
afterwards that no lease changed hands during the drain and reports it). The instances
run with tests/support/service_process.py's timings, as service_bench.py's do: batches of
up to 2,000 events, 50 ms batch wait, an idle checkpoint every 0.2 s (which moves an idle
partition's position past the last write, so the drain's end is seen; P times as many
such writes as at P = 1, a cost that the default 10 s interval makes negligible).

Before the pause, a 3 s window measures the idle floor: the CPU the instances and
mongosim spend with nothing to do (heartbeats, lease renewals, the assigner's looks,
the 0.2 s idle checkpoints, all growing with P). CPU per event is given raw (an upper
bound) and net of that floor times the drain's length (a lower bound: a busy partition
stores no idle checkpoints).

Reported per (P, N): the drain rate; the service's CPU µs/event per instance and summed;
mongosim's CPU µs/event and the rate mongosim alone could sustain at that cost (one
Python process: 1e6 / its µs per event, the ceiling of any end-to-end rate here); each
instance's share of the events applied (``streamer_events_applied_total`` from its
/metrics); retries per 1,000 events (``streamer_transaction_retries_total``), the write
conflicts among them (reason code 112) and retried batches as a share of batches; each
instance's RSS after the drain; the slowest partition's catch-up time.

A ``hot`` workload (the same, a third of the orders are one user's: they land in every
partition, so partitions that commit at the same time conflict on her totals) is run for
P in {1, 4, 8}: its retries, and every partition's catch-up time, which bounds its lag.
In a backlog drain a batch holds up to 2,000 events, so every batch touches most of the
200 users and two partitions' batches conflict whether or not there is a hot user; the
live runs show the hot user's own effect: single-statement writes from the test model
(tests/support/model.Traffic, 200 users) at a steady 300 writes/s for 20 s, with and
without a hot user (a third of the orders), at P = 1 on one instance and P = 8 on four:
retries per 1,000 events, each partition's largest ``streamer_lag_seconds`` (sampled
every 0.5 s from every instance's /metrics) and the catch-up after the last write.

Takeover: P = 4, two instances, lease TTL 5 s, light traffic (about 100 writes/s); one
instance is SIGKILLed and the time until the other holds every partition lease (live:
unexpired, not released) is measured, three times.

The machine the figures in the README come from has 2 cores shared with other work; with
N = 4 there are five busy processes on two cores, so the drain rate cannot grow with N
there: compare CPU per event, shares and retries, not rates, across N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from bson import Timestamp
from motor.motor_asyncio import AsyncIOMotorClient
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mongosim.process import MongoSimProcess  # noqa: E402

from streamer.core.partitions import partitions_of  # noqa: E402
from tests.bench.service_bench import (  # noqa: E402
    cpu_seconds,
    free_port,
    metrics_up,
    orders,
    rss_mb,
    write_mixed,
)
from tests.support.model import Traffic  # noqa: E402
from tests.support.polling import eventually  # noqa: E402
from tests.support.service import partition_keys  # noqa: E402
from tests.support.service_process import ServiceProcess, live_leases  # noqa: E402

STREAMS = ("orders", "inventory")
NAMES = "abcdefgh"
DRAIN_TTL_S = 60.0  # above the time a backlog takes to write while the instances are paused
TAKEOVER_TTL_S = 5.0
DATABASE = "scale"
IDLE_WINDOW_S = 3.0


def settled(held: dict[str, str], count: int, names: list[str]) -> bool:
    """Every partition leased, each instance within [P//N, ceil(P/N)] of each stream's."""
    if set(held) != set(partition_keys(count)):
        return False
    low, high = count // len(names), math.ceil(count / len(names))
    for stream in STREAMS:
        per = Counter(held[p.key] for p in partitions_of(stream, count))
        if set(per) - set(names) or any(not low <= per[n] <= high for n in names):
            return False
    return True


async def streaming(db: Any, count: int) -> bool:
    """Every partition past its first resync, with a stored position."""
    docs = [
        d
        async for d in db.streamer_checkpoints.find(
            {"_id": {"$in": partition_keys(count)}, "phase": "stream"}, {"position": 1}
        )
    ]
    return len(docs) == len(partition_keys(count)) and all(
        d.get("position") is not None for d in docs
    )


async def scrape(port: int) -> dict[str, float]:
    """The sums the bench needs from one instance's /metrics."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as reply,
    ):
        text = await reply.text()
    out: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamer_events_applied_total":
                out["events"] += sample.value
            elif sample.name == "streamer_lag_seconds":
                key = f"lag:{sample.labels['stream']}#{sample.labels['partition']}"
                out[key] = max(out[key], sample.value)
            elif sample.name == "streamer_batches_total":
                out["batches"] += sample.value
            elif sample.name == "streamer_transaction_retries_total":
                reason = sample.labels.get("reason", "")
                out["retries"] += sample.value
                out[f"reason:{reason}"] += sample.value
                # A write conflict: WriteConflict, code 112 (the reason is "Type:code").
                if reason.endswith(":112") or "WriteConflict" in reason:
                    out["conflicts"] += sample.value
    return dict(out)


def instance(uri: str, name: str, count: int, ttl_s: float, defer: bool = True) -> ServiceProcess:
    return ServiceProcess(
        uri,
        DATABASE,
        instance_id=name,
        partitions=count,
        lease_ttl_s=ttl_s,
        http_port=free_port(),
        batch_size=2000,
        defer_shared_totals="true" if defer else "false",
        # Retries log a warning each; the child's stderr pipe is read only at exit, so
        # a hot run's warnings must not fill it and block the process.
        log_level="ERROR",
    )


def port_of(service: ServiceProcess) -> int:
    return int(service.env["STREAMER_HTTP_PORT"])


def pid_of(service: ServiceProcess) -> int:
    assert service.proc is not None
    return service.proc.pid


async def start_settled(
    db: Any, services: list[ServiceProcess], names: list[str], count: int
) -> dict[str, str]:
    """Start every instance; wait until the split has settled and every partition streams."""
    for s in services:
        await s.start()
    for s in services:
        await metrics_up(port_of(s), within_s=120)
    held: dict[str, str] = {}

    async def ready() -> bool:
        nonlocal held
        held = await live_leases(db)
        return settled(held, count, names) and await streaming(db, count)

    await eventually(
        ready,
        what=f"P={count} settled over {names}",
        within_s=120,
        interval_s=0.1,
        detail=lambda: held,
    )
    return held


async def stop_all(services: list[ServiceProcess]) -> list[str]:
    """SIGTERM every instance still running; the end of the log of any that failed."""
    problems = []
    for s in services:
        if s.proc is None or s.proc.returncode is not None:
            continue
        os.kill(pid_of(s), signal.SIGCONT)  # a no-op unless a failure left it paused
        code, err = await s.stop()
        if code != 0:
            problems.append(f"exit {code}: {err[-500:]}")
    return problems


async def shut_down(services: list[ServiceProcess], client: Any, sim: Any, cell: str) -> None:
    """Stop the instances, the client and mongosim; a cell whose instance failed raises."""
    try:
        problems = await stop_all(services)
    finally:
        client.close()
        await sim.stop()
    if problems:
        raise RuntimeError(f"{cell}: {problems}")


def deltas(
    before: list[dict[str, float]], after: list[dict[str, float]], keep: Callable[[str], bool]
) -> list[dict[str, float]]:
    """Each instance's counters' growth between two scrapes (the kept names only)."""
    return [
        {k: m1.get(k, 0.0) - m0.get(k, 0.0) for k in set(m1) | set(m0) if keep(k)}
        for m0, m1 in zip(before, after, strict=True)
    ]


async def write_backlog(db: Any, n: int, hot: bool) -> tuple[int, Timestamp]:
    events = await write_mixed(db, n, hot=hot)
    reply = await db.command("ping")
    return events, reply["operationTime"]


SHARES = "shares folded"


async def until_covered(db: Any, count: int, target: Timestamp, began: float) -> dict[str, float]:
    """Poll every partition's checkpoint until each covers ``target``, and then until
    no share of a user's totals waits to be folded (streamer.core.deltas: the totals are
    whole only then); per key (and ``SHARES``), the seconds from ``began`` to the first
    poll that saw it done."""
    done: dict[str, float] = {}
    wanted = partition_keys(count)

    async def all_covered() -> bool:
        now = time.perf_counter()
        query = {"_id": {"$in": [k for k in wanted if k not in done]}}
        async for d in db.streamer_checkpoints.find(query, {"position": 1, "phase": 1}):
            if d.get("phase") == "stream" and (d.get("position") or Timestamp(0, 0)) >= target:
                done[d["_id"]] = now - began
        if len(done) == len(wanted) and not await db.streamer_totals_deltas.find_one({}):
            done[SHARES] = now - began
        return SHARES in done

    await eventually(
        all_covered,
        what=f"every partition caught up to {target}",
        within_s=600,
        interval_s=0.02,
        detail=lambda: sorted(set(wanted) - set(done)),
    )
    return done


async def drain(
    count: int, n_instances: int, workload: str, n: int, defer: bool = True
) -> dict[str, Any]:
    """One backlog drain with P = ``count`` over ``n_instances`` (see the module doc);
    ``defer``: each user's totals written by one partition (streamer.core.deltas)."""
    sim = MongoSimProcess(oplog_size=max(200_000, 4 * n))
    await sim.start()
    assert sim.pid is not None
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
    db = client[DATABASE]
    names = list(NAMES[:n_instances])
    services = [instance(sim.uri, name, count, DRAIN_TTL_S, defer) for name in names]
    try:
        before_split = await start_settled(db, services, names, count)
        # The idle floor: what the instances and mongosim spend with nothing to do
        # (heartbeats, lease renewals, the assigner's looks, idle checkpoints, which grow
        # with P), over a fixed window: a measurement period, not a wait on state.
        idle0, server_idle0 = [cpu_seconds(pid_of(s)) for s in services], cpu_seconds(sim.pid)
        idle_began = time.perf_counter()
        await asyncio.sleep(IDLE_WINDOW_S)
        idle_s = time.perf_counter() - idle_began
        idle = [(cpu_seconds(pid_of(s)) - c) / idle_s for s, c in zip(services, idle0, strict=True)]
        server_idle = (cpu_seconds(sim.pid) - server_idle0) / idle_s
        metrics0 = [await scrape(port_of(s)) for s in services]
        for s in services:
            os.kill(pid_of(s), signal.SIGSTOP)
        write_began = time.perf_counter()
        events, last = await write_backlog(db, n, hot=workload == "hot")
        write_s = time.perf_counter() - write_began
        server0 = cpu_seconds(sim.pid)
        cpu0 = [cpu_seconds(pid_of(s)) for s in services]
        began = time.perf_counter()
        for s in services:
            os.kill(pid_of(s), signal.SIGCONT)
        caught = await until_covered(db, count, last, began)
        wall = time.perf_counter() - began
        server_cpu = cpu_seconds(sim.pid) - server0
        cpu = [cpu_seconds(pid_of(s)) - c for s, c in zip(services, cpu0, strict=True)]
        rss = [rss_mb(pid_of(s)) for s in services]
        metrics1 = [await scrape(port_of(s)) for s in services]
        after_split = await live_leases(db)
    finally:
        await shut_down(services, client, sim, f"P={count} N={n_instances}")
    delta = deltas(metrics0, metrics1, keep=lambda k: not k.startswith("lag:"))
    applied = [d.get("events", 0.0) for d in delta]
    applied_total = sum(applied) or 1.0
    retries = sum(d.get("retries", 0.0) for d in delta)
    conflicts = sum(d.get("conflicts", 0.0) for d in delta)
    batches = sum(d.get("batches", 0.0) for d in delta)
    reasons: defaultdict[str, float] = defaultdict(float)
    for d in delta:
        for k, v in d.items():
            if k.startswith("reason:") and v:
                reasons[k.removeprefix("reason:")] += v
    return {
        "partitions": count,
        "instances": n_instances,
        "workload": workload,
        "fallback": defer and count > 1,
        "events": events,
        "events_applied": applied_total,
        "backlog_write_s": write_s,
        "drain_s": wall,
        "drain_eps": events / wall,
        "service_cpu_us_per_event": [c / events * 1e6 for c in cpu],
        "service_cpu_us_per_event_sum": sum(cpu) / events * 1e6,
        "server_cpu_us_per_event": server_cpu / events * 1e6,
        "service_idle_cores": idle,
        "server_idle_cores": server_idle,
        # Less the idle floor for the drain's length: a lower bound, as a busy partition
        # does not store idle checkpoints (the raw figure is the upper bound).
        "service_cpu_us_per_event_net_sum": (sum(cpu) - sum(idle) * wall) / events * 1e6,
        "server_cpu_us_per_event_net": (server_cpu - server_idle * wall) / events * 1e6,
        "server_ceiling_eps": events / server_cpu if server_cpu else float("nan"),
        "server_cores": server_cpu / wall,
        "service_cores": sum(cpu) / wall,
        "shares": [a / applied_total for a in applied],
        "retries_per_1000_events": retries / events * 1000,
        "conflicts_per_1000_events": conflicts / events * 1000,
        "retries_per_batch": retries / batches if batches else 0.0,
        "batches": batches,
        "retry_reasons": dict(reasons),
        "rss_mb": rss,
        "partition_catch_up_s": caught,
        "slowest_partition_s": max(caught.values()),
        "fastest_partition_s": min(v for k, v in caught.items() if k != SHARES),
        "leases_moved_during_drain": sum(
            before_split.get(k) != after_split.get(k) for k in partition_keys(count)
        ),
    }


# -- live traffic: retries and lag under a steady rate ----------------------------------------
async def live(
    count: int, n_instances: int, hot_share: float, seconds: float, rate: float, defer: bool = True
) -> dict[str, Any]:
    """Single-statement writes (tests/support/model.Traffic, 200 users, ``hot_share`` of
    the orders user 0's) at ``rate``/s for ``seconds``, with every instance streaming:
    retries per 1,000 events and each partition's largest ``streamer_lag_seconds``
    (sampled from every instance's /metrics every 0.5 s)."""
    sim = MongoSimProcess(oplog_size=200_000)
    await sim.start()
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
    db = client[DATABASE]
    names = list(NAMES[:n_instances])
    services = [instance(sim.uri, name, count, 15.0, defer) for name in names]
    traffic = Traffic(
        db, random.Random(19), users=200, order_ids=3000, product_ids=300, hot_share=hot_share
    )
    lags: dict[str, float] = defaultdict(float)
    try:
        await start_settled(db, services, names, count)
        metrics0 = [await scrape(port_of(s)) for s in services]
        done = asyncio.Event()

        async def sample() -> None:
            while not done.is_set():
                for s in services:
                    for k, v in (await scrape(port_of(s))).items():
                        if k.startswith("lag:"):
                            lags[k.removeprefix("lag:")] = max(lags[k.removeprefix("lag:")], v)
                # The sampling period, not a wait on state.
                await asyncio.sleep(0.5)

        sampler = asyncio.create_task(sample())
        total = int(rate * seconds)
        began = time.perf_counter()
        for i in range(total):
            delay = began + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator, not waiting on state
            await traffic.step()
        written_s = time.perf_counter() - began
        last = (await db.command("ping"))["operationTime"]
        ended = time.perf_counter()
        caught = await until_covered(db, count, last, ended)
        done.set()
        await sampler
        metrics1 = [await scrape(port_of(s)) for s in services]
    finally:
        await shut_down(services, client, sim, f"live P={count} N={n_instances}")
    delta = deltas(metrics0, metrics1, keep=lambda k: ":" not in k)
    retries = sum(d.get("retries", 0.0) for d in delta)
    batches = sum(d.get("batches", 0.0) for d in delta)
    return {
        "partitions": count,
        "instances": n_instances,
        "hot_share": hot_share,
        "fallback": defer and count > 1,
        "events": traffic.events,
        "rate_eps": traffic.events / written_s,
        "retries_per_1000_events": retries / traffic.events * 1000,
        "conflicts_per_1000_events": sum(d.get("conflicts", 0.0) for d in delta)
        / traffic.events
        * 1000,
        "batches": batches,
        "retries_per_batch": retries / batches if batches else 0.0,
        "max_lag_s_by_partition": dict(lags),
        "max_lag_s": max(lags.values(), default=float("nan")),
        "caught_up_after_last_write_s": max(caught.values()),
    }


# -- takeover ---------------------------------------------------------------------------------
async def paced_orders(db: Any, stop: asyncio.Event, rate: float = 100.0) -> None:
    """Light traffic while a takeover happens: one order every 1/rate s."""
    i = 0
    while not stop.is_set():
        await db.orders.insert_one(orders(1, 1_000_000 + i)[0])
        i += 1
        # Pacing the load generator, not waiting on state.
        await asyncio.sleep(1 / rate)


async def all_held_by(db: Any, owner: str, count: int, within_s: float) -> None:
    """Until ``owner`` holds every partition's live lease (polled every 50 ms)."""
    held: dict[str, str] = {}

    async def all_held() -> bool:
        nonlocal held
        held = await live_leases(db)
        return set(held) == set(partition_keys(count)) and set(held.values()) == {owner}

    await eventually(
        all_held,
        what=f"{owner} holding every partition lease",
        within_s=within_s,
        interval_s=0.05,
        detail=lambda: held,
    )


async def takeover(repeats: int) -> dict[str, Any]:
    """P = 4, instances a and b: SIGKILL a, time until b holds every partition lease."""
    count, ttl = 4, TAKEOVER_TTL_S
    sim = MongoSimProcess(oplog_size=200_000)
    await sim.start()
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(sim.uri)
    db = client[DATABASE]
    a, b = instance(sim.uri, "a", count, ttl), instance(sim.uri, "b", count, ttl)
    times: list[float] = []
    stop = asyncio.Event()
    traffic = asyncio.create_task(paced_orders(db, stop))
    try:
        await start_settled(db, [a, b], ["a", "b"], count)
        for attempt in range(repeats):
            if attempt:
                await a.start()
                await metrics_up(port_of(a), within_s=120)
                await start_settled(db, [], ["a", "b"], count)
            await a.kill()
            killed = time.perf_counter()
            await all_held_by(db, "b", count, within_s=ttl * 4 + 30)
            times.append(time.perf_counter() - killed)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await traffic
        problems = await stop_all([a, b])
        client.close()
        await sim.stop()
    if problems:
        raise RuntimeError(f"takeover: {problems}")
    return {
        "partitions": count,
        "instances": 2,
        "lease_ttl_s": ttl,
        "takeover_s": times,
        "takeover_max_s": max(times),
        "target_s": ttl + 2,
    }


# -- the run, the table, the targets ------------------------------------------------------------
def ratio_lines(
    label: str, run: dict[str, Any], base: dict[str, Any], key: str, *, target: float
) -> list[str]:
    """A CPU ratio against its target, raw and net of the idle floor (``key`` + "_net",
    or the "_net" inserted before "_sum")."""
    net_key = key.replace("_sum", "_net_sum") if key.endswith("_sum") else f"{key}_net"
    lines = []
    for what, k in ((label, key), ("  the same net of the idle floor", net_key)):
        ratio = run[k] / base[k]
        verdict = "met" if ratio <= target else "NOT met"
        lines.append(
            f"{what}: {ratio:.2f}x ({run[k]:.0f} / {base[k]:.0f} µs/event; "
            f"target <= {target:g}x): {verdict}"
        )
    return lines


def cell(
    results: list[dict[str, Any]],
    count: int,
    n: int,
    workload: str = "mixed",
    fallback: bool = True,
) -> Any:
    """The run of that cell (with the fallback, where P > 1, unless ``fallback`` is False)."""
    for r in results:
        if (r["partitions"], r["instances"], r["workload"]) == (count, n, workload) and r[
            "fallback"
        ] == (fallback and count > 1):
            return r
    return None


def targets(scale: dict[str, Any]) -> list[str]:
    """Each target of issue 19 for the mixed workload, with the figures and a verdict."""
    runs = scale["runs"]
    out = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    p1, p4n4 = cell(runs, 1, 1), cell(runs, 4, 4)
    if p1 and p4n4:
        out += ratio_lines(
            "summed service CPU at P=4 over 4 instances / P=1",
            p4n4,
            p1,
            "service_cpu_us_per_event_sum",
            target=1.25,
        )
    worst = 0.0
    checked = []
    for r in runs:
        n = r["instances"]
        if r["workload"] != "mixed" or n == 1 or r["partitions"] % n:
            continue
        off = max(abs(s * n - 1) for s in r["shares"])
        worst = max(worst, off)
        checked.append(f"P={r['partitions']}/N={n}")
    if checked:
        out.append(
            f"instance shares where N divides P ({', '.join(checked)}): worst {worst:.0%} "
            f"off 1/N (target within 25%): {verdict(worst <= 0.25)}"
        )
    p8 = cell(runs, 8, 1)
    if p1 and p8:
        out += ratio_lines(
            "mongosim CPU at P=8 / P=1 (one instance)",
            p8,
            p1,
            "server_cpu_us_per_event",
            target=1.5,
        )
    if "takeover" in scale:
        t = scale["takeover"]
        out.append(
            f"takeover after SIGKILL (P=4, 2 instances, lease TTL {t['lease_ttl_s']:g} s): "
            f"max {t['takeover_max_s']:.1f} s of {len(t['takeover_s'])} "
            f"(target <= {t['target_s']:g} s): {verdict(t['takeover_max_s'] <= t['target_s'])}"
        )
    for n in (1, 2, 4):
        a, b = cell(runs, 1, n), cell(runs, 8, n)
        if a and b:
            # The largest instance: at P = 1 the one that works (the others stand by).
            ra, rb = max(a["rss_mb"]), max(b["rss_mb"])
            out.append(
                f"RSS of the largest instance, N={n}: P=8 {rb:.0f} MB vs P=1 {ra:.0f} MB "
                f"({rb / ra - 1:+.1%}; target within 10%): {verdict(abs(rb / ra - 1) <= 0.10)}"
            )
    hot = [r for r in runs if r["workload"] == "hot"]
    if hot:
        spread = ", ".join(
            f"P={r['partitions']}/N={r['instances']} one writer {writer(r)}: "
            f"{r['retries_per_1000_events']:.1f} "
            f"retries/1k events ({r['retries_per_batch']:.2f} per batch), every partition "
            f"caught up in {r['slowest_partition_s']:.1f} s"
            for r in hot
        )
        out.append(f"hot user, backlog drain: {spread}")
    for r in scale.get("live", []):
        out.append(
            f"live traffic P={r['partitions']}/N={r['instances']}, one writer {writer(r)}, "
            "hot share "
            f"{r['hot_share']:.2f}: {r['retries_per_1000_events']:.1f} retries/1k events "
            f"({r['retries_per_batch']:.2f} per batch), largest lag of any partition "
            f"{r['max_lag_s']:.2f} s, all caught up {r['caught_up_after_last_write_s']:.2f} s "
            "after the last write"
        )
    return out


def writer(r: dict[str, Any]) -> str:
    """The fallback column: on, off, or not applicable (one partition writes everything)."""
    return "-" if r["partitions"] == 1 else ("yes" if r["fallback"] else "no")


def table(scale: dict[str, Any]) -> str:
    out = [
        "| workload | P | N | one writer per user | events | drain (ev/s) "
        "| mongosim ceiling (ev/s) "
        "| service CPU µs/ev: each (sum; net of idle) | mongosim CPU µs/ev (net of idle) "
        "| shares | retries / conflicts "
        "per 1k ev (per batch) | slowest partition (s) | RSS MB each | leases moved |",
        "|---|---:|---:|---|---:|---:|---:|---|---:|---|---|---:|---|---:|",
    ]
    for r in scale["runs"]:
        each = " / ".join(f"{c:.0f}" for c in r["service_cpu_us_per_event"])
        shares = " / ".join(f"{s:.0%}" for s in r["shares"])
        rss = " / ".join(f"{m:.0f}" for m in r["rss_mb"])
        out.append(
            f"| {r['workload']} | {r['partitions']} | {r['instances']} | {writer(r)} "
            f"| {r['events']:,} "
            f"| {r['drain_eps']:,.0f} | {r['server_ceiling_eps']:,.0f} "
            f"| {each} ({r['service_cpu_us_per_event_sum']:.0f}; "
            f"{r['service_cpu_us_per_event_net_sum']:.0f}) "
            f"| {r['server_cpu_us_per_event']:.0f} ({r['server_cpu_us_per_event_net']:.0f}) "
            f"| {shares} "
            f"| {r['retries_per_1000_events']:.1f} / {r['conflicts_per_1000_events']:.1f} "
            f"({r['retries_per_batch']:.2f}) | {r['slowest_partition_s']:.1f} | {rss} "
            f"| {r['leases_moved_during_drain']} |"
        )
    if scale.get("live"):
        out.append("")
        out.append(
            "| live traffic | P | N | one writer per user | hot share | events | rate (ev/s) "
            "| retries / conflicts "
            "per 1k ev | retries per batch | max lag, any partition (s) | caught up after "
            "the last write (s) |"
        )
        out.append("|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|")
        for r in scale["live"]:
            out.append(
                f"| model traffic | {r['partitions']} | {r['instances']} | {writer(r)} "
                f"| {r['hot_share']:.2f} "
                f"| {r['events']:,} | {r['rate_eps']:,.0f} "
                f"| {r['retries_per_1000_events']:.1f} / {r['conflicts_per_1000_events']:.1f} "
                f"| {r['retries_per_batch']:.2f} | {r['max_lag_s']:.2f} "
                f"| {r['caught_up_after_last_write_s']:.2f} |"
            )
    if "takeover" in scale:
        t = scale["takeover"]
        times = ", ".join(f"{x:.1f}" for x in t["takeover_s"])
        out.append("")
        out.append(
            f"takeover after SIGKILL, P=4, 2 instances, lease TTL {t['lease_ttl_s']:g} s: {times} s"
        )
    return "\n".join(out)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    # Each cell: (P, N) or (P, N, hot share) and whether each user's totals have one
    # writer (streamer.core.deltas); the runs without it show what the fallback removes.
    if args.quick:
        grid = [(p, n, True) for p in (1, 4) for n in (1, 2)] + [(4, 2, False)]
        hot = [(4, 2, True), (4, 2, False)]
        repeats = 1
        live_cases = [(4, 2, 1 / 3, True), (4, 2, 1 / 3, False)]
        live_s = 5.0
    else:
        grid = [(p, n, True) for p in (1, 2, 4, 8) for n in (1, 2, 4)]
        grid += [(4, 4, False), (8, 4, False)]
        hot = [(1, 1, True), (4, 4, True), (4, 4, False), (8, 4, True), (8, 4, False)]
        repeats = 3
        live_cases = [
            (1, 1, 1 / 3, True),
            (8, 4, 0.0, True),
            (8, 4, 0.0, False),
            (8, 4, 1 / 3, True),
            (8, 4, 1 / 3, False),
        ]
        live_s = 20.0
    if args.only:
        # Just these mixed drains, each --repeat times, interleaved (to see the spread of
        # one cell on a shared machine): no hot, live or takeover runs.
        cells = [(int(c.split("x")[0]), int(c.split("x")[1])) for c in args.only.split(",")]
        grid = [(p, n, True) for _ in range(args.repeat) for p, n in cells]
        hot, live_cases = [], []
        repeats = 0
    runs = []
    for count, n, defer in grid:
        print(f"mixed P={count} N={n} fallback {defer} ...", file=sys.stderr, flush=True)
        runs.append(await drain(count, n, "mixed", args.events, defer))
    for count, n, defer in hot:
        print(f"hot P={count} N={n} fallback {defer} ...", file=sys.stderr, flush=True)
        runs.append(await drain(count, n, "hot", args.events, defer))
    scale: dict[str, Any] = {"runs": runs, "live": []}
    for count, n, share, defer in live_cases:
        print(
            f"live P={count} N={n} hot share {share:.2f} fallback {defer} ...",
            file=sys.stderr,
            flush=True,
        )
        scale["live"].append(await live(count, n, share, live_s, args.live_rate, defer))
    if repeats:
        print("takeover ...", file=sys.stderr, flush=True)
        scale["takeover"] = await takeover(repeats)
    scale["targets"] = targets(scale)
    scale["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    scale["command"] = " ".join(["python", *sys.argv])
    scale["load_average_at_end"] = os.getloadavg()
    return scale


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="P in {1, 4}, N in {1, 2}, 2,000 events, one takeover: to check that it runs",
    )
    parser.add_argument("--events", type=int, default=None, help="default 20,000 (quick: 2,000)")
    parser.add_argument(
        "--live-rate", type=float, default=300.0, help="writes/s of the live runs (default 300)"
    )
    parser.add_argument(
        "--only", help="only these mixed drains, PxN comma-separated (e.g. 1x1,8x1): no others"
    )
    parser.add_argument("--repeat", type=int, default=1, help="with --only: runs of each cell")
    parser.add_argument("--output", default="bench-results.json")
    parsed = parser.parse_args()
    if parsed.events is None:
        parsed.events = 2_000 if parsed.quick else 20_000
    scale = asyncio.run(main(parsed))
    output = Path(parsed.output)
    results = json.loads(output.read_text()) if output.exists() else {}
    results["scale"] = scale  # beside service_bench.py's figures, in the same file
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(scale))
    print()
    print("\n".join(f"- {line}" for line in scale["targets"]))
    print(f"machine: {scale['machine']}; wrote {parsed.output} (key: scale)")

"""mongosim's own CPU per operation through Motor: a before/after check of one tree against
another, steadier than rates on a shared machine (`make bench` does not run it).

Rates through Motor on the 2-core machine spread 5-30% between runs of one tree, so a
median of three cannot settle a 5% question. The server's CPU per operation (from
/proc, the mongosim child process only) moves much less. Run this file alternately with
each tree's venv: the mongosim measured is the one that venv's Python imports (the
child is ``python -m mongosim``), and the line names its path.

    /other/tree/.venv/bin/python tests/bench/mongosim_cpu.py --label before
    .venv/bin/python tests/bench/mongosim_cpu.py --label after   # [--docs N] [--rounds N]

It prints one line: per kind, the median rate and the median mongosim CPU in µs per
operation over the rounds (the backlog read's CPU includes writing its 20 batches).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mongosim.process import MongoSimProcess  # noqa: E402

import mongosim  # noqa: E402
from tests.bench import mongosim_bench as bench  # noqa: E402

FINDS, UPSERTS, BACKLOG = 20_000, 10_000, 20_000


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of process ``pid`` so far (proc(5): utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    proc = MongoSimProcess(oplog_size=1_000_000)
    await proc.start()
    assert proc.pid is not None
    rates: dict[str, list[float]] = {"find": [], "upsert": [], "backlog": []}
    cpu: dict[str, list[float]] = {kind: [] for kind in rates}
    try:
        await bench._preload(proc.uri, "c", args.docs)
        for _ in range(args.rounds):
            for kind, n in (("find", FINDS), ("upsert", UPSERTS)):
                before = cpu_seconds(proc.pid)
                rates[kind].append(bench._parallel(proc.uri, "c", kind, n, args.docs, 2))
                cpu[kind].append((cpu_seconds(proc.pid) - before) / n * 1e6)
            before = cpu_seconds(proc.pid)
            rates["backlog"].append(await bench._backlog_read_rate(proc.uri, "c", BACKLOG))
            cpu["backlog"].append((cpu_seconds(proc.pid) - before) / BACKLOG * 1e6)
    finally:
        await proc.stop()
    print(
        args.label,
        f"(mongosim from {Path(mongosim.__file__).parent})",
        "  ".join(
            f"{kind} {statistics.median(rates[kind]):,.0f}/s "
            f"{statistics.median(cpu[kind]):.1f} µs/op"
            for kind in rates
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())

"""``mongosim``: run the replica set from the command line.

Prints exactly one line, ``mongosim ready <uri>``, once it accepts connections, and exits
0 on SIGTERM or SIGINT after closing cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

from .replset import DEFAULT_ELECTION_TIMEOUT_MS, DEFAULT_REPLICATION_DELAY_MS, ReplicaSet
from .server import MongoSim


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mongosim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017, help="0 picks a free port")
    parser.add_argument("--replset", default="rs0")
    parser.add_argument(
        "--members",
        type=int,
        default=1,
        help="data-bearing members, each on its own port from --port up (0: free ports)",
    )
    parser.add_argument(
        "--replication-delay-ms",
        type=float,
        default=DEFAULT_REPLICATION_DELAY_MS,
        metavar="MS",
        help="with --members > 1: how long after a write secondaries apply it",
    )
    parser.add_argument(
        "--election-timeout-ms",
        type=float,
        default=DEFAULT_ELECTION_TIMEOUT_MS,
        metavar="MS",
        help="with --members > 1: how long a set without a primary waits to elect one",
    )
    parser.add_argument(
        "--unsafe-uncommitted-change-streams",
        action="store_true",
        help="with --members > 1, TEST ONLY: change streams return events the majority "
        "does not have yet (mongod never does; the negative control of rollback tests)",
    )
    parser.add_argument("--oplog-size", type=int, default=100_000, help="oplog entries kept")
    parser.add_argument("--ttl-monitor-interval", type=float, default=60.0, metavar="S")
    parser.add_argument(
        "--snapshot-history-window-secs",
        type=int,
        default=300,
        metavar="S",
        help="minSnapshotHistoryWindowInSeconds: how far back atClusterTime reads reach",
    )
    parser.add_argument("--data-dir", default=None, help="persist data and oplog here")
    parser.add_argument(
        "--no-test-commands",
        action="store_true",
        help="refuse configureFailPoint, as mongod without enableTestCommands",
    )
    parser.add_argument(
        "--auth", action="store_true", help="require authentication and check privileges"
    )
    parser.add_argument("--tls-cert-key-file", default=None, help="PEM certificate and key")
    parser.add_argument("--tls-ca-file", default=None, help="CA that signs client certificates")
    parser.add_argument(
        "--tls-allow-connections-without-certificates",
        action="store_true",
        help="with --tls-ca-file, do not require a client certificate",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    options: dict[str, Any] = dict(
        oplog_size=args.oplog_size,
        ttl_monitor_interval=args.ttl_monitor_interval,
        data_dir=args.data_dir,
        snapshot_history_window_s=args.snapshot_history_window_secs,
        enable_test_commands=not args.no_test_commands,
        auth=args.auth,
        tls_cert_key_file=args.tls_cert_key_file,
        tls_ca_file=args.tls_ca_file,
        tls_allow_connections_without_certificates=args.tls_allow_connections_without_certificates,
    )
    sim: MongoSim | ReplicaSet
    if args.members > 1:
        sim = ReplicaSet(
            args.members,
            host=args.host,
            port=args.port,
            replset=args.replset,
            replication_delay_ms=args.replication_delay_ms,
            election_timeout_ms=args.election_timeout_ms,
            unsafe_uncommitted_change_streams=args.unsafe_uncommitted_change_streams,
            **options,
        )
    else:
        sim = MongoSim(host=args.host, port=args.port, replset=args.replset, **options)
    async with sim:
        print(f"mongosim ready {sim.uri}", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))
    sys.exit(0)


if __name__ == "__main__":
    main()

"""The ``streamer`` command: run, bootstrap, status, resync, repartition, verify, demo.

Exit codes (:data:`EXIT_CODES`, shown by ``--help``): 0 success; 1 drift, a conflict or
a failure the message explains; 2 bad usage, invalid settings or configuration, or the
HTTP port in use; 3 a forced stop (a second SIGTERM/SIGINT); 130 any one-shot command
interrupted by SIGTERM/SIGINT. Errors
are one plain line on stderr, never a traceback (the URI's password is never printed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn

import structlog

from .. import __version__
from ..core.errors import DatabaseUnavailable, FatalDatabaseError, SettingsError, StreamerError
from ..core.schema import load_schema
from ..logs import configure_logging, mask_credentials
from ..mongo import Mongo
from ..runtime.bootstrap import bootstrap_exit_code, run_bootstrap
from ..runtime.messages import fatal, unreachable
from ..runtime.shutdown import FORCED_STOP, INTERRUPTED, Signals
from ..runtime.supervisor import Service, install_signal_handlers
from ..runtime.verify import SOURCE_OF
from ..settings import Settings, load_settings
from ..streams.registry import STREAMS, partition_counts
from .repartition import run_repartition
from .resync import run_resync
from .status import read_status, render
from .verify import Options as VerifyOptions
from .verify import run_verify

log = structlog.get_logger("streamer.cli")

# Every exit code, as --help lists them; the README's "Exit codes" table has one row each
# (tests/unit/test_exit_codes.py holds the two to each other and to the constants).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "ok (run, demo: stopped by the first SIGTERM/SIGINT)"),
    (1, "drift/conflict/failure"),
    (2, "usage or settings error"),
    (FORCED_STOP, "forced stop (a second SIGTERM/SIGINT)"),
    (
        INTERRUPTED,
        "interrupted (a one-shot command by SIGTERM/SIGINT; any command while it starts)",
    ),
)
EXIT_CODES_HELP = ", ".join(f"{code} {meaning}" for code, meaning in EXIT_CODES) + "."


def command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    """A subcommand whose summary shows in ``streamer --help`` and in its own --help."""
    return sub.add_parser(name, help=summary, description=summary)


def _members(value: str) -> int:
    """``demo --members``: a whole number of members, at least one."""
    try:
        members = int(value)
    except ValueError:
        members = 0
    if members < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {value!r}")
    return members


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamer",
        description="Keeps per-user order totals and low-stock alerts in MongoDB correct "
        "in real time, from the change streams of orders and inventory.",
        epilog="Settings come from STREAMER_* environment variables over the packaged "
        "default configuration (or the file in STREAMER_CONFIG). Exit codes: " + EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"streamer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    command(sub, "run", "run the service until SIGTERM/SIGINT")
    boot = command(sub, "bootstrap", "apply the declared indexes, TTLs and validators")
    boot.add_argument(
        "--check", action="store_true", help="change nothing; print drift and exit 1 on any"
    )
    boot.add_argument(
        "--replace-conflicting",
        action="store_true",
        help="drop and recreate indexes whose definition conflicts with the schema",
    )
    status = command(sub, "status", "each stream's owner, lease, position, lag and phase")
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    resync = command(
        sub, "resync", "rebuild derived data from the source collections, then stream on"
    )
    resync.epilog = (
        "With a service running, asks the stream's owner to do it and waits, printing "
        "progress. Otherwise resyncs here, holding the stream's lease. Ctrl-C stops it "
        "(exit 130); running it again resumes where it stopped."
    )
    resync.add_argument("--stream", choices=STREAMS, help="one stream (default: both)")
    resync.add_argument(
        "--partition",
        type=int,
        metavar="I",
        help="one partition of a split stream (with --stream; default: all of them)",
    )
    resync.add_argument(
        "--fresh",
        action="store_true",
        help="clear the derived data first instead of reconciling it in place",
    )
    repartition = command(
        sub, "repartition", "change how many partitions a stream is read as (exact under writes)"
    )
    repartition.epilog = (
        "A barrier stops the old partitions at their next batch; each new partition then "
        "resyncs its share of the source, exactly once. Afterwards run the instances with "
        "the new STREAMER_PARTITIONS."
    )
    repartition.add_argument(
        "--partitions", type=int, required=True, metavar="P", help="the new number of partitions"
    )
    repartition.add_argument("--stream", choices=STREAMS, help="one stream (default: both)")
    verify = command(
        sub, "verify", "recompute from the sources; print differences, exit 1 on drift"
    )
    verify.epilog = (
        "Reads the derived data and each stream's checkpoint at one cluster time, and each "
        "source at the time its checkpoint covers (snapshot reads: the server's "
        "minSnapshotHistoryWindowInSeconds bounds how far back), so a running service "
        "never shows false drift. Exit 0 clean, 1 drift or not comparable within --wait."
    )
    verify.add_argument(
        "--repair",
        action="store_true",
        help="rewrite drifted user_totals from the orders, under the stream's checkpoint",
    )
    verify.add_argument("--json", action="store_true", help="one JSON document on stdout")
    verify.add_argument(
        "--examples", type=int, default=10, metavar="N", help="drifted documents shown (10)"
    )
    verify.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="wait up to S seconds for a comparable checkpoint (default 5)",
    )
    demo = command(
        sub, "demo", "everything on an embedded mongosim with demo data and traffic (make run)"
    )
    demo.add_argument("--port", type=int, default=27017, help="mongosim's port (default 27017)")
    demo.add_argument(
        "--auth",
        action="store_true",
        help="mongosim with --auth: bootstrap as root, the service as the least-privilege role",
    )
    demo.add_argument(
        "--tls",
        action="store_true",
        help="TLS with client certificates, from a throw-away CA (needs mongo-streamer[demo])",
    )
    demo.add_argument(
        "--members",
        type=_members,
        default=1,
        metavar="N",
        help="mongosim as a replica set of N members on --port and the ports after it "
        "(default 1); the service discovers them and follows the primary",
    )
    demo.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the log when the demo ends (its path is printed); by default the demo's "
        "temporary directory (log, keys, streamer.env) is removed however it ends",
    )
    return parser


async def _with_mongo(settings: Settings, body: Callable[[Mongo], Awaitable[int]]) -> int:
    async with Mongo(settings.mongo_options()) as mongo:
        return await body(mongo)


async def cmd_bootstrap(settings: Settings, args: argparse.Namespace) -> int:
    schema = load_schema(settings.schema_path)  # before connecting: a bad file is exit 2

    async def body(mongo: Mongo) -> int:
        report = await run_bootstrap(
            mongo,
            schema,
            check=args.check,
            replace_conflicting=args.replace_conflicting,
        )
        for line in report.lines():
            print(line)
        return bootstrap_exit_code(report)

    return await _with_mongo(settings, body)


async def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    async def body(mongo: Mongo) -> int:
        report = await read_status(mongo, {name: SOURCE_OF[name] for name in STREAMS})
        for line in render(report, as_json=args.json):
            print(line)
        return 0

    return await _with_mongo(settings, body)


async def cmd_resync(settings: Settings, args: argparse.Namespace) -> int:
    if args.partition is not None and not args.stream:
        raise SettingsError("--partition needs --stream (partition indexes are per stream)")
    streams = (args.stream,) if args.stream else STREAMS
    return await run_resync(settings, streams, args.fresh, args.partition)


async def cmd_repartition(settings: Settings, args: argparse.Namespace) -> int:
    streams = (args.stream,) if args.stream else STREAMS

    async def body(mongo: Mongo) -> int:
        for line in await run_repartition(mongo, settings, streams, args.partitions, print):
            print(line)
        return 0

    return await _with_mongo(settings, body)


async def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    options = VerifyOptions(
        repair=args.repair, as_json=args.json, examples=max(args.examples, 0), wait_s=args.wait
    )

    async def body(mongo: Mongo) -> int:
        return await run_verify(mongo, settings, options)

    return await _with_mongo(settings, body)


async def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    service = Service(settings)
    install_signal_handlers(service)
    return await service.run()


async def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    # mongosim is a separate distribution, not a dependency of the service.
    if importlib.util.find_spec("mongosim") is None:
        print(
            "streamer demo: needs mongosim, which is not installed: "
            "`pip install ./mongosim` from the repository (make run does it)",
            file=sys.stderr,
        )
        return 2
    from .demo import run_demo

    return await run_demo(
        settings,
        args.port,
        auth=args.auth,
        tls=args.tls,
        keep_logs=args.keep_logs,
        members=args.members,
    )


# Commands that stop gracefully on the first signal (resync: between batches, saying
# where); the others are cancelled.
GRACEFUL = frozenset({"run", "demo", "resync"})
COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": cmd_run,
    "bootstrap": cmd_bootstrap,
    "status": cmd_status,
    "resync": cmd_resync,
    "repartition": cmd_repartition,
    "verify": cmd_verify,
    "demo": cmd_demo,
}


ONE_SHOT_INTERRUPTED = "interrupted"


async def interruptible(work: Coroutine[Any, Any, int], name: str) -> int:
    """A one-shot command: the first SIGTERM/SIGINT cancels it (exit 130), a second forces."""
    task = asyncio.create_task(work, name=name)

    def cancel() -> None:
        task.cancel()

    signals = Signals(cancel, name=name).install()
    try:
        await asyncio.wait({task})
    finally:
        signals.uninstall()
    if task.cancelled():
        print(f"{name}: {ONE_SHOT_INTERRUPTED}", file=sys.stderr)
        return INTERRUPTED
    return task.result()


async def run_command(settings: Settings, args: argparse.Namespace) -> int:
    work = COMMANDS[args.command](settings, args)
    if args.command in GRACEFUL:
        return await work  # stops gracefully on the first signal (streamer.runtime.shutdown)
    return await interruptible(work, f"streamer {args.command}")


def failure_line(exc: BaseException, settings: Settings) -> tuple[int, str]:
    """The exit code and the one line for an error that ended a command."""
    if isinstance(exc, SettingsError):
        return 2, str(exc)
    if isinstance(exc, DatabaseUnavailable):
        return 1, unreachable(settings, exc)
    if isinstance(exc, FatalDatabaseError):
        return 1, fatal(settings, exc)
    if isinstance(exc, StreamerError):
        return 1, mask_credentials(str(exc))
    first = (str(exc).strip().splitlines() or [""])[0]
    return 1, f"{type(exc).__name__}: {mask_credentials(first)}"


async def command_then_exit(settings: Settings, args: argparse.Namespace) -> NoReturn:
    """Run the command, print its one line if it failed, and leave the process at once.

    The work is over at this point (the service has stopped its tasks and released its
    leases; a one-shot command is done or was interrupted). Leaving through ``os._exit``
    skips only the wait for driver threads still blocked in server selection (Motor runs
    each call on a thread), which would otherwise hold the process for up to
    ``server_selection_timeout_ms`` after a stop.
    """
    try:
        code = await run_command(settings, args)
    except Exception as exc:  # one plain line, never a traceback
        code, line = failure_line(exc, settings)
        print(f"streamer {args.command}: {line}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def load_configuration() -> Settings:
    """The settings, with the schema file they name read and checked.

    The schema is configuration too: every command checks it here, before it logs,
    serves or connects anything, so a bad file is the same one line and exit 2 whatever
    the command and whether or not the database answers.
    """
    settings = load_settings()
    load_schema(settings.schema_path)
    partition_counts(settings)  # a per-stream partition count that names no stream
    return settings


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_configuration()
    except SettingsError as exc:  # SchemaError included
        print(f"streamer: {exc}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(command_then_exit(settings, args))
    except KeyboardInterrupt:  # a Ctrl-C before the signal handlers were installed
        print(f"streamer {args.command}: {ONE_SHOT_INTERRUPTED}", file=sys.stderr)
        # As command_then_exit leaves: not through the interpreter's wait for threads
        # (a driver's, or the demo's mongosim starting), where a second Ctrl-C would
        # end in a traceback and none at all would wait for them to give up.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(INTERRUPTED)


if __name__ == "__main__":
    main()

"""``streamer resync``: ask the stream's running owner, or resync here under its lease.

When a live instance holds the stream's lease (see :mod:`streamer.runtime.leases`), the
command writes a :class:`~streamer.core.checkpoint.ResyncRequest` onto the checkpoint and
polls, with a deadline, until the owner has carried it out, printing its progress.
When nobody does, it acquires the lease under its own instance id, renews it while it
works and releases it at the end, so a service started meanwhile stands by instead of
racing it. A resync left unfinished is resumed, and the command says so.

SIGINT or SIGTERM stops it between batches: it prints where it stopped and exits 130;
the checkpoint stays in the resumable resync phase.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import structlog

from ..core.checkpoint import Checkpoint, Resync, ResyncRequest
from ..core.errors import CheckpointConflict, SettingsError, StreamerError
from ..core.partitions import Partition, parse_key, partitions_of
from ..core.resync_plan import FORCED, counted
from ..mongo import Mongo
from ..mongo.retries import retry_transient
from ..runtime import partitionings
from ..runtime.barriers import fresh_barrier
from ..runtime.checkpoints import CheckpointStore
from ..runtime.commits import Committer
from ..runtime.leases import Lease, Leases, renew_until_lost
from ..runtime.lifecycle import sleep_unless_stopped
from ..runtime.resync import Resyncer
from ..runtime.shutdown import INTERRUPTED, Signals
from ..settings import Settings
from ..streams.handler import StreamHandler
from ..streams.registry import default_instance_id, make_handlers
from .verify import owners_held

log = structlog.get_logger("streamer.resync_command")

T = TypeVar("T")

REASON = FORCED


def progress_kind(resync: Resync) -> str:
    """The step a progress line belongs to: a scan is "counting" until its total is known."""
    return "counting" if resync.step == "scan" and resync.total is None else resync.step


def progress_line(stream: str, resync: Resync) -> str:
    """``orders: scanned 21,500 of 45,000`` (or the sweep's count once scanned)."""
    kind = progress_kind(resync)
    if kind == "sweep":
        scanned = counted(resync.scanned, resync.total)
        return f"{stream}: scanned {scanned}; removed {resync.removed:,}"
    if kind == "clear":
        return f"{stream}: clearing the derived data"
    if kind == "counting":
        return f"{stream}: counting the documents to scan"
    return f"{stream}: scanned {counted(resync.scanned, resync.total)}"


def resuming_line(stream: str, resync: Resync) -> str:
    where = counted(resync.scanned, resync.total)
    return f"{stream}: resuming the interrupted resync at {where}"


def interrupted_line(stream: str, resync: Resync | None) -> str:
    where = f" at {counted(resync.scanned, resync.total)}" if resync is not None else ""
    return (
        f"{stream}: resync interrupted{where}; "
        "run streamer resync again (or start the service) to resume"
    )


class Throttle:
    """Lets a line through when it changed and ``every_s`` has passed since the last,
    or at once when it starts a new step (``kind``): counting, clearing, scanning,
    sweeping each show, however quickly the next follows."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self.last_at = float("-inf")
        self.last_line: str | None = None
        self.last_kind: str | None = None

    def __call__(self, line: str, kind: str | None = None) -> bool:
        now = self.clock()
        if line == self.last_line:
            return False
        if kind == self.last_kind and now - self.last_at < self.every_s:
            return False
        self.last_at, self.last_line, self.last_kind = now, line, kind
        return True


@contextmanager
def stop_on_signals(stopping: asyncio.Event) -> Iterator[None]:
    """The first SIGINT/SIGTERM sets ``stopping`` (the batch in hand finishes); a second
    forces the exit (streamer.runtime.shutdown)."""
    signals = Signals(stopping.set, name="streamer resync").install()
    try:
        yield
    finally:
        signals.uninstall()


class ResyncCommand:
    def __init__(
        self,
        mongo: Mongo,
        settings: Settings,
        stopping: asyncio.Event,
        *,
        print_line: Callable[[str], None] = print,
        poll_s: float = 0.5,
        pickup_s: float | None = None,
        stall_s: float = 300.0,
    ) -> None:
        self.mongo, self.settings, self.stopping = mongo, settings, stopping
        self.policy = settings.retry_policy()
        self.print = print_line
        self.instance = f"{default_instance_id()}:resync:{os.getpid()}"
        self.store = CheckpointStore(mongo, self.instance)
        self.leases = Leases(mongo, self.instance, settings.lease_ttl_s)
        self.handlers = make_handlers(mongo, settings)
        self.poll_s = poll_s
        # How long a live owner may take to pick a request up (it looks every second).
        self.pickup_s = pickup_s if pickup_s is not None else max(30.0, 2 * settings.lease_ttl_s)
        self.stall_s = stall_s

    def _handler(self, key: str) -> StreamHandler:
        """The handler of the stream or partition ``key`` names."""
        unit = parse_key(key)
        return self.handlers[unit.stream].for_partition(unit)

    async def _retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        result: T = await retry_transient(op, what=what, policy=self.policy)
        return result

    async def resync(self, stream: str, fresh: bool) -> int:
        """Resync ``stream`` (a stream's name, or a partition's id such as
        ``orders#2/8``: its lease, its checkpoint): 0 done, 130 interrupted."""
        holder = await self._retry(lambda: self.leases.holder(stream), "lease.holder")
        if holder is None:
            lease = await self._retry(lambda: self.leases.acquire(stream), "lease.acquire")
            if isinstance(lease, Lease):
                return await self._here(stream, fresh, None)
            holder = "another instance"
        return await self._ask(stream, fresh, holder)

    # -- here, under the lease ------------------------------------------------------
    async def _here(self, stream: str, fresh: bool, request: ResyncRequest | None) -> int:
        renew = asyncio.create_task(self._keep_lease(stream), name=f"lease-{stream}")
        try:
            return await self._resync_here(stream, fresh, request, renew)
        finally:
            renew.cancel()
            await asyncio.wait({renew})  # a cancel of this task still propagates
            if not renew.cancelled():
                renew.exception()  # retrieved: raised by _resync_here unless the resync was done
            try:
                await self.leases.release(stream)
            except Exception as exc:  # the lease then expires on its own within its TTL
                log.warning("lease.release_failed", stream=stream, error=_describe(exc))

    async def _keep_lease(self, stream: str) -> None:
        """Renew the lease as the service's owner does; once it is lost, or renewing is
        refused or fails with a bug, stop the resync between batches."""
        try:
            await renew_until_lost(
                self.leases, stream, self.settings.lease_ttl_s, log.bind(stream=stream)
            )
        except Exception:
            self.stopping.set()
            raise  # _resync_here raises it once the batch in hand is done
        self.stopping.set()

    async def _resync_here(
        self, stream: str, fresh: bool, request: ResyncRequest | None, renew: asyncio.Task[None]
    ) -> int:
        throttle = Throttle(1.0)

        def on_progress(cp: Checkpoint) -> None:
            if cp.resync is not None and throttle(
                line := progress_line(stream, cp.resync), progress_kind(cp.resync)
            ):
                self.print(line)

        resyncer = Resyncer(
            self.mongo,
            self.store,
            Committer(self.mongo, self.store, policy=self.policy),
            self._handler(stream),
            batch_size=self.settings.batch_size,
            stopping=self.stopping,
            on_progress=on_progress,
        )
        current = await self._retry(lambda: self.store.load(stream), "checkpoint.load")
        try:
            if (
                current is not None
                and current.resync is not None
                and (current.resync.fresh or not fresh)
            ):
                cp = current  # unfinished: resume it
                if current.resync.segments:
                    self.print(resuming_line(stream, current.resync))
            else:
                cp = await resyncer.claim(current, REASON, fresh, request)
            done = await resyncer.run(cp)
        except CheckpointConflict as exc:
            raise CheckpointConflict(
                f"{stream}: another instance moved the checkpoint while this resync ran "
                f"({exc}); nothing it committed is lost or doubled. Run `streamer resync` "
                "again: it asks the running service, or resumes the resync here"
            ) from exc
        if done is None:
            if renew.done():
                if (failure := renew.exception()) is not None:
                    raise failure  # renewing was refused (or a bug): its own message
                raise StreamerError(
                    f"{stream}: lost the stream's lease (another instance took it, or it "
                    "could not be renewed before it expired); the resync is left "
                    "resumable and the stream's next owner resumes it"
                )
            stored = await self._retry(lambda: self.store.load(stream), "checkpoint.load")
            print(interrupted_line(stream, stored.resync if stored else None), file=sys.stderr)
            return INTERRUPTED
        self.print(f"{stream}: resynced; streaming resumes at {done.start_at}")
        return 0

    # -- asking the owner -------------------------------------------------------------
    async def _ask(self, stream: str, fresh: bool, holder: str) -> int:
        request = ResyncRequest(
            id=uuid.uuid4().hex,
            reason=f"requested by `streamer resync` ({self.instance})",
            fresh=fresh,
            requested_at=dt.datetime.now(dt.UTC),
            by=self.instance,
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pickup_s
        while not await self._retry(
            lambda: self.store.request_resync(stream, request), "resync.request"
        ):
            # No checkpoint yet: the owner is still on its first-start resync.
            if await self._pause() or loop.time() > deadline:
                return self._gave_up(stream, holder)
        self.print(f"{stream}: asked {holder}, which runs the stream, to resync; waiting")
        return await self._wait_for(stream, request, holder)

    async def _pause(self) -> bool:
        """Wait one poll interval; True if stopping was asked for meanwhile."""
        return await sleep_unless_stopped(self.stopping, self.poll_s)

    def _gave_up(self, stream: str, holder: str) -> int:
        print(
            f"{stream}: stopped waiting; {holder} carries on with the resync "
            "(`streamer status` shows it)",
            file=sys.stderr,
        )
        return INTERRUPTED

    async def _wait_for(self, stream: str, request: ResyncRequest, holder: str) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pickup_s
        throttle = Throttle(1.0)
        seen: Resync | None = None
        printed: str | None = None
        while True:
            cp = await self._retry(lambda: self.store.load(stream), "checkpoint.load")
            assert cp is not None
            summary = cp.last_resync or {}
            if cp.phase == "stream" and summary.get("request") == request.id:
                # The final count, even when the owner scanned everything between two
                # looks: how often this command looks must not decide what it reports.
                done = counted(summary.get("scanned", 0), summary.get("total"))
                final = f"{stream}: scanned {done}"
                if final != printed:
                    self.print(final)
                self.print(
                    f"{stream}: resynced by {holder} ({summary.get('scanned', 0):,} scanned); "
                    f"streaming resumes at {cp.start_at}"
                )
                return 0
            if cp.resync is not None and cp.resync.request == request.id:
                if cp.resync != seen:
                    seen, deadline = cp.resync, loop.time() + self.stall_s
                if throttle(line := progress_line(stream, cp.resync), progress_kind(cp.resync)):
                    self.print(line)
                    printed = line
            if await self._pause():
                return self._gave_up(stream, holder)
            if await self._retry(lambda: self.leases.holder(stream), "lease.holder") is None:
                # The owner went away: carry the request out here.
                lease = await self._retry(lambda: self.leases.acquire(stream), "lease.acquire")
                if isinstance(lease, Lease):
                    pending = await self._retry(lambda: self.store.requested(stream), "request")
                    return await self._here(stream, request.fresh, pending)
            if loop.time() > deadline:
                raise StreamerError(
                    f"{stream}: {holder} holds the stream but has not carried out the resync "
                    f"request for {self.pickup_s if seen is None else self.stall_s:.0f} s "
                    "(an older version that does not take requests?). The request stays; "
                    "stop that instance and run `streamer resync` again"
                )


async def after_barrier(command: ResyncCommand, key: str, gen: int) -> int:
    """Once a fresh resync's barrier let the partitions scan: wait for ``key`` to stream
    again under generation ``gen``, resyncing it here if nobody owns it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + command.stall_s
    throttle = Throttle(1.0)
    while True:
        cp = await command._retry(lambda: command.store.load(key), "checkpoint.load")
        if cp is not None and cp.phase == "stream" and cp.gen >= gen:
            summary = cp.last_resync or {}
            command.print(f"{key}: resynced ({summary.get('scanned', 0):,} scanned)")
            return 0
        if cp is not None and cp.resync is not None:
            line = progress_line(key, cp.resync)
            if throttle(line, progress_kind(cp.resync)):
                command.print(line)
        holder = await command._retry(lambda: command.leases.holder(key), "lease.holder")
        if holder is None:
            lease = await command._retry(lambda: command.leases.acquire(key), "lease.acquire")
            if isinstance(lease, Lease):
                return await command._here(key, False, None)
        if await command._pause():
            return command._gave_up(key, holder or "another instance")
        if loop.time() > deadline:
            raise StreamerError(
                f"{key}: its owner {holder} has not finished the resync in "
                f"{command.stall_s:.0f} s; `streamer status` shows where it stands"
            )


async def units_of(
    mongo: Mongo, settings: Settings, streams: tuple[str, ...], partition: int | None
) -> list[Partition]:
    """What ``streamer resync`` works on: each stream, or each of its partitions as the
    stream is stored (``streamer_partitionings``; the setting before a first start), or
    the one ``partition``."""
    units: list[Partition] = []
    for stream in streams:
        stored = await partitionings.load(mongo, stream)
        count = stored.count if stored is not None else settings.partitions_of(stream)
        if partition is not None and not 0 <= partition < count:
            raise SettingsError(
                f"--partition {partition}: {stream} has {count} partition"
                f"{'s' if count != 1 else ''} (0 to {count - 1})"
            )
        units += [p for p in partitions_of(stream, count) if partition in (None, p.index)]
    return units


async def run_resync(
    settings: Settings, streams: tuple[str, ...], fresh: bool, partition: int | None = None
) -> int:
    """The ``streamer resync`` command: 0 done, 130 interrupted, errors raised."""
    stopping = asyncio.Event()
    with stop_on_signals(stopping):
        async with Mongo(settings.mongo_options()) as mongo:
            command = ResyncCommand(mongo, settings, stopping)
            units = await units_of(mongo, settings, streams, partition)
            for stream in streams:
                mine = [u for u in units if u.stream == stream]
                if fresh and partition is None and mine and mine[0].split:
                    code = await _fresh_split(command, mine)
                else:
                    code = 0
                    for unit in mine:
                        code = code or await command.resync(unit.key, fresh)
                if code != 0:
                    return code
    return 0


async def _fresh_split(command: ResyncCommand, units: list[Partition]) -> int:
    """A fresh resync of a whole split stream: every partition at one barrier while the
    stream's data is cleared (streamer.runtime.barriers), then each scans its share."""
    stream = units[0].stream
    command.print(f"{stream}: holding its {len(units)} partitions at a barrier; clearing")
    gen = await fresh_barrier(
        command.mongo,
        command.store,
        command.handlers[stream],
        len(units),
        reason=REASON,
        batch_size=command.settings.batch_size,
        policy=command.policy,
        quiet=lambda keys: owners_held(command.mongo, command.store, keys, command.instance),
    )
    for unit in units:
        code = await after_barrier(command, unit.key, gen)
        if code != 0:
            return code
    return 0


def _describe(exc: BaseException) -> str:
    """One line for a log: the error's type and message."""
    return f"{type(exc).__name__}: {exc}"

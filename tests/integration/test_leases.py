"""Stream leases: one owner at a time, on the server's clock."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from streamer.mongo import Mongo
from streamer.runtime.leases import Held, Lease, Leases
from streamer.runtime.processes import THIS_PROCESS, ProcessId
from streamer.settings import Settings
from tests.support.polling import eventually
from tests.support.service import RunService

# What a lease records of a process with no /proc identity (another machine, say).
FAR = ProcessId("").document()


async def test_a_live_lease_keeps_others_out_until_it_expires_or_is_released(mongo: Mongo) -> None:
    """acquire/renew for the owner; None for others until expiry; release hands it over."""
    a, b = Leases(mongo, "a", ttl_s=0.3), Leases(mongo, "b", ttl_s=0.3)
    first = await a.acquire("orders")
    assert isinstance(first, Lease) and first.owner == "a" and first.previous_owner is None
    assert first.handover == "new"
    held = await b.acquire("orders")
    assert isinstance(held, Held) and (held.owner, held.nonce) == ("a", THIS_PROCESS.nonce)
    assert not held.same_id and held.process == THIS_PROCESS.document()
    assert await a.renew("orders") is not None
    assert await b.renew("orders") is None

    async def acquired() -> Lease | None:
        taken = await b.acquire("orders")
        return taken if isinstance(taken, Lease) else None

    taken = await eventually(acquired, what="b's lease after a's expired", within_s=5)
    assert taken.owner == "b" and taken.previous_owner == "a" and taken.handover == "expired"
    assert await a.renew("orders") is None
    await b.release("orders")
    back = await a.acquire("orders")
    assert isinstance(back, Lease) and back.previous_owner == "b"
    assert back.handover == "released"


async def test_a_released_lease_is_free_at_once_even_in_the_same_millisecond(
    mongo: Mongo,
) -> None:
    """Release, then acquire at once, many times: never found still held, never live.

    BSON dates have millisecond precision, so most rounds put the acquire in the same
    millisecond as the release (or the next): the flag, not a clock comparison, frees it.
    """
    a, b = Leases(mongo, "a", ttl_s=30), Leases(mongo, "b", ttl_s=30)
    assert isinstance(await a.acquire("orders"), Lease)
    for i in range(100):
        holder, other = (a, b) if i % 2 == 0 else (b, a)
        await holder.release("orders")
        assert await other.holder("orders") is None
        taken = await other.acquire("orders")
        assert isinstance(taken, Lease), f"round {i}: {taken}"
        assert taken.handover == "released" and taken.previous_owner == holder.owner
        assert await other.holder("orders") == other.owner
        assert await holder.renew("orders") is None  # the releaser's renewal finds it gone


async def test_a_lease_under_the_same_id_but_another_process_is_not_ours(mongo: Mongo) -> None:
    """Same id, another nonce: held while renewed, taken only once it goes unrenewed."""
    ttl_s = 20.0  # unrenewed after 10 s: never reached by the first half's quick polls
    first = Leases(mongo, "pod-0", ttl_s=ttl_s, process=ProcessId("first"))
    second = Leases(mongo, "pod-0", ttl_s=ttl_s, process=ProcessId("second"))
    held_by_first = Held("orders", "pod-0", "first", same_id=True, process=FAR)
    assert isinstance(await first.acquire("orders"), Lease)
    for _ in range(5):
        assert isinstance(await first.renew("orders"), Lease)
        assert await second.acquire("orders") == held_by_first
        assert await second.renew("orders") is None
        assert await second.holder("orders") == "pod-0"
    await second.release("orders")  # not its lease: changes nothing
    assert await first.holder("orders") == "pod-0" and await first.renew("orders") is not None
    # A short TTL: the first process stops renewing (it died); the second takes over
    # after half the TTL, before the lease expires.
    quick_first = Leases(mongo, "pod-0", ttl_s=4.0, process=ProcessId("first"))
    quick_second = Leases(mongo, "pod-0", ttl_s=4.0, process=ProcessId("second"))
    assert isinstance(await quick_first.renew("orders"), Lease)

    async def taken_back() -> Lease | None:
        taken = await quick_second.acquire("orders")
        if isinstance(taken, Lease):
            return taken
        assert taken == held_by_first
        return None

    taken = await eventually(taken_back, what="the lease taken back unrenewed", within_s=30)
    # "unrenewed", not "expired": taken back before the TTL ran out.
    assert taken.handover == "unrenewed" and taken.previous_nonce == "first"
    assert taken.previous_owner is None  # the same id: no other instance's session to kill
    assert await quick_first.renew("orders") is None


async def test_a_lease_of_a_process_known_gone_is_taken_at_once(mongo: Mongo) -> None:
    """Same id, the holder's process gone (streamer.runtime.processes): taken before any wait."""
    first = Leases(mongo, "pod-0", ttl_s=60, process=ProcessId("first"))
    second = Leases(mongo, "pod-0", ttl_s=60, process=ProcessId("second"))
    assert isinstance(await first.acquire("orders"), Lease)
    assert isinstance(await second.acquire("orders", gone="another"), Held)  # not the holder
    taken = await second.acquire("orders", gone="first")
    assert isinstance(taken, Lease) and taken.handover == "gone"
    assert taken.previous_nonce == "first" and await first.renew("orders") is None
    # The gone process's nonce frees nothing once another holds the lease.
    assert isinstance(await first.acquire("orders", gone="first"), Held)


async def test_a_standby_takes_over_when_the_owner_stops(
    settings: Settings, service: RunService
) -> None:
    """Two services: one owns both streams; stopping it hands them to the other."""
    fast = settings.model_copy(update={"lease_ttl_s": 1.0})
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(service(fast, instance_id="a"))
        first = contextlib.AsyncExitStack()
        b = await first.enter_async_context(service(fast, instance_id="b"))
        assert set(a.watchers) == {"orders", "inventory"} and not b.watchers
        await stack.aclose()  # a stops gracefully and releases its leases
        await eventually(
            lambda: set(b.watchers) == {"orders", "inventory"},
            what="b's takeover of both streams",
            within_s=10,
        )
        await first.aclose()


# The standby is watched for a number of lease polls, not for a time: 36 is what the
# issue's 30 s, shortened to 12 s, gives nominally (each stream polls every third of the
# 2 s TTL). A loaded machine takes longer to make them, not fewer.
STANDBY_POLLS = 36


def command_failures(registry: CollectorRegistry) -> float:
    """streamer_mongodb_command_failures_total, summed over every command."""
    return sum(
        sample.value
        for family in registry.collect()
        if family.name == "streamer_mongodb_command_failures"
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_a_healthy_standby_polls_the_lease_without_failures_or_warnings(
    settings: Settings, service: RunService
) -> None:
    """An owner and a standby with a 2 s lease: the standby's polls fail nothing, warn nothing.

    Another instance holding the lease is an expected outcome, not a failed command: the
    standby's streamer_mongodb_command_failures_total stays 0 and nothing logs a warning.
    """
    # A slow command on a loaded test machine is a real warning, but not this test's
    # subject: only outcomes of the lease protocol are.
    fast = settings.model_copy(update={"lease_ttl_s": 2.0, "slow_command_ms": 60_000})
    async with service(fast, instance_id="owner") as owner:
        # The owner's first start (a resync) is done; from here on, only the standby.
        with capture_logs() as logs:
            async with service(fast, instance_id="standby") as standby:

                def polls() -> int:
                    return standby.mongo.listener.stats.by_name.get("findAndModify", 0)

                await eventually(
                    lambda: polls() >= STANDBY_POLLS,
                    what=f"{STANDBY_POLLS} lease polls by the standby",
                    within_s=60,
                    interval_s=0.2,
                )
                assert set(owner.watchers) == {"orders", "inventory"} and not standby.watchers
                assert command_failures(standby.metrics.registry) == 0
                assert standby.mongo.listener.stats.failures == 0
    noisy = [e for e in logs if e["log_level"] in ("warning", "error", "critical")]
    failed = [e for e in logs if e["event"] == "mongo.command_failed"]
    assert not noisy and not failed, noisy + failed

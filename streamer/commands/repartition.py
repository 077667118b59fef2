"""``streamer repartition --partitions P``: change how many partitions a stream is read as.

The operation itself is :func:`streamer.runtime.repartitioning.repartition` (a barrier
that retires the old partitions' checkpoints, a drain of each to one cluster time, the
mirror re-tagged, a checkpoint per new partition streaming on from there). This
command runs it for each stream asked, prints one line per stream, and says what the
operator does next: restart the instances with the new setting. Instances still
running with the old one stop at their next batch, saying so; ones started with it
refuse, naming both numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from ..core.errors import SettingsError
from ..core.partitions import MAX_PARTITIONS
from ..mongo import Mongo
from ..runtime.repartitioning import repartition
from ..runtime.watchers import watcher_options
from ..settings import Settings
from ..streams.registry import default_instance_id, make_handlers


async def run_repartition(
    mongo: Mongo,
    settings: Settings,
    streams: tuple[str, ...],
    count: int,
    print_line: Callable[[str], None] = lambda line: None,
) -> list[str]:
    """Repartition ``streams`` into ``count`` partitions; a line for each. While the old
    partitions are drained, ``print_line`` hears of each one done."""
    if not 1 <= count <= MAX_PARTITIONS:
        raise SettingsError(f"--partitions {count}: must be 1 to {MAX_PARTITIONS}")
    handlers = make_handlers(mongo, settings)
    by = f"{default_instance_id()}:repartition"
    lines = []
    for stream in streams:
        before, after = await repartition(
            mongo,
            handlers[stream],
            count,
            watcher_options(settings),
            by=by,
            on_drained=lambda key: print_line(f"{key}: drained"),
        )
        if before == after:
            lines.append(f"{stream}: already {count} partition{'s' if count != 1 else ''}")
            continue
        was = f"{before.count} partitions" if before.count > 0 else "an interrupted repartition"
        lines.append(
            f"{stream}: {was} -> {after.count} (epoch {after.epoch}); the new partitions "
            f"stream on from the barrier once instances set to {after.count} own them"
        )
    lines.append(
        f"next: run the instances with STREAMER_PARTITIONS={count} (those with the old "
        "setting stop, saying so)"
    )
    return lines

"""The registry of streams: their names, their handlers, and whose process runs them.

What the service (:mod:`streamer.runtime.supervisor`) and the one-shot commands
(``streamer resync``, ``streamer verify``) share about the streams, here so that a
command need not import the service (and with it aiohttp, health and metrics) to know
them.
"""

from __future__ import annotations

import socket

from ..core.errors import SettingsError
from ..mongo import Mongo
from ..settings import Settings
from .handler import StreamHandler
from .inventory import InventoryStream
from .orders import OrdersStream

STREAMS = ("orders", "inventory")


def default_instance_id() -> str:
    """Stable across restarts of one pod (its hostname), distinct between pods.

    Two processes on one host share it; the lease's per-process nonce keeps them from
    both owning a stream (see :mod:`streamer.runtime.leases`), and the second says so as
    it stands by.
    """
    return socket.gethostname()


def partition_counts(settings: Settings, streams: tuple[str, ...] = STREAMS) -> dict[str, int]:
    """How many partitions each of ``streams`` is read as; a per-stream override that
    names no stream is a settings error."""
    unknown = sorted(set(settings.stream_partitions) - set(STREAMS))
    if unknown:
        raise SettingsError(
            f"stream_partitions: unknown stream {unknown[0]!r} (the streams: {', '.join(STREAMS)})"
        )
    return {name: settings.partitions_of(name) for name in streams}


def make_handlers(mongo: Mongo, settings: Settings) -> dict[str, StreamHandler]:
    """One handler per stream in :data:`STREAMS`, on ``mongo``."""
    return {
        "orders": OrdersStream(mongo, defer_shared=settings.defer_shared_totals),
        "inventory": InventoryStream(
            mongo,
            default_threshold=settings.low_stock_threshold,
            hysteresis=settings.alert_hysteresis,
        ),
    }

"""The registry of streams: their names, their handlers, and whose process runs them.

What the service (:mod:`streamer.runtime.supervisor`) and the one-shot commands
(``streamer resync``, ``streamer verify``) share about the streams, here so that a
command need not import the service (and with it aiohttp, health and metrics) to know
them.
"""

from __future__ import annotations

import socket

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


def make_handlers(mongo: Mongo, settings: Settings) -> dict[str, StreamHandler]:
    """One handler per stream in :data:`STREAMS`, on ``mongo``."""
    return {
        "orders": OrdersStream(mongo),
        "inventory": InventoryStream(
            mongo,
            default_threshold=settings.low_stock_threshold,
            hysteresis=settings.alert_hysteresis,
        ),
    }

"""The inventory stream: opens and resolves low-stock alerts in ``stock_alerts``."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import structlog

from ..core.alerts import INVENTORY_FIELDS, Transition, plan_inventory
from ..core.changes import Change
from ..core.keys import bson_key
from ..core.partitions import and_filters
from ..mongo import Mongo, Session
from ..mongo.types import UpdateOne
from .handler import BatchOutcome, MirroredStream

log = structlog.get_logger("streamer.inventory")

STOCK_ALERTS = "stock_alerts"
MIRROR = "streamer_mirror_inventory"


class InventoryStream(MirroredStream):
    name = "inventory"
    source = "inventory"
    fields = INVENTORY_FIELDS
    mirror = MIRROR

    def __init__(self, mongo: Mongo, *, default_threshold: int, hysteresis: int = 0) -> None:
        super().__init__(mongo)
        self.default_threshold = default_threshold
        self.hysteresis = hysteresis

    async def apply(self, session: Session, changes: Sequence[Change], gen: int) -> BatchOutcome:
        prior, stored = await self.load_prior(session, changes)
        ids = list({bson_key(c.key): c.key for c in changes}.values())
        open_docs = await self.mongo.find(
            STOCK_ALERTS, {"product_id": {"$in": ids}, "state": "open"}, session=session
        )
        open_alerts = {bson_key(d["product_id"]): d for d in open_docs}
        effects = plan_inventory(
            changes,
            prior,
            open_alerts,
            default_threshold=self.default_threshold,
            hysteresis=self.hysteresis,
        )
        writes = await self.write_mirror(session, effects.states, gen, stored)
        # Resolve before inserting: one batch may resolve a product's alert and open a
        # new one, and the unique partial index allows one open alert at a time.
        resolves = [
            UpdateOne({"_id": alert_id, "state": "open"}, {"$set": fields})
            for alert_id, fields in effects.resolves.items()
        ]
        await self.mongo.bulk_write(STOCK_ALERTS, resolves, session=session)
        await self.mongo.insert_many(STOCK_ALERTS, effects.inserts, session=session)
        return await self.outcome(
            session,
            changes,
            effects.rejected,
            transitions=effects.transitions,
            derived_writes=writes + len(resolves) + len(effects.inserts),
        )

    async def clear(self, session: Session, limit: int, gen: int) -> int:
        # Alerts are history: a fresh resync keeps them and reconciles the open ones. Each
        # product's alerts have one writer (its partition), so no share is taken back.
        return await self.clear_collection(MIRROR, session, limit, self.partition.mirror_filter())

    async def orphans(self, gen: int, limit: int) -> list[Any]:
        ids = await self.mirror_orphans(gen, limit)
        if len(ids) >= limit:
            return ids
        # Open alerts of products this resync never saw (deleted while history was lost).
        open_docs = await self.mongo.find(
            STOCK_ALERTS,
            and_filters({"state": "open"}, self.partition.source_filter("$product_id")),
            projection={"product_id": 1},
        )
        if open_docs:
            product_ids = [d["product_id"] for d in open_docs]
            current = await self.mongo.find(
                MIRROR, {"_id": {"$in": product_ids}, "g": gen}, projection={"_id": 1}
            )
            seen: set[Hashable] = {bson_key(d["_id"]) for d in current}
            ids += [p for p in product_ids if bson_key(p) not in seen][: limit - len(ids)]
        return ids


def log_transition(t: Transition, stream: str) -> None:
    """Every alert transition is one structured event."""
    fields: dict[str, Any] = {
        "stream": stream,
        "product_id": str(t.product_id),
        "sku": t.sku,
        "stock": t.stock,
        "threshold": t.threshold,
    }
    if t.kind == "opened":
        log.info("alert.opened", **fields)
    else:
        log.info("alert.resolved", resolution=t.resolution, **fields)

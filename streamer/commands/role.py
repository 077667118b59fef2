"""The service's least-privilege MongoDB role, defined once.

The README's ``createRole`` snippet is :func:`create_role_js` (a test keeps the two
equal), and the least-privilege tests create the role from :func:`privileges`, so the
documented role is the one that is proven. Actions and resources: the manual's
"Privilege Actions" and "Resource Document" pages.
"""

from __future__ import annotations

import json
from typing import Any

from ..runtime import checkpoints, leases, membership, partitionings, sessions
from ..streams import handler, inventory, orders

ROLE = "streamer"
SOURCES = (orders.OrdersStream.source, inventory.InventoryStream.source)
SOURCE_ACTIONS = ("find", "changeStream")
# The service's own collections, each with only the actions it uses there (every one is
# shown needed by tests/integration/test_least_privilege.py). `streamer repartition` is
# an operator's command, run with a privileged user, not under this role. An upsert needs insert and
# update, findAndModify needs find too (mongod's write_commands auth checks).
STATE: dict[str, tuple[str, ...]] = {
    # totals are inserted, replaced and deleted (a user's last order gone, a resync)
    orders.USER_TOTALS: ("find", "insert", "update", "remove"),
    # alerts are history: opened (insert), resolved (update), never deleted
    inventory.STOCK_ALERTS: ("find", "insert", "update"),
    # one document per stream, created once and moved by compare-and-set, never deleted
    checkpoints.COLLECTION: ("find", "insert", "update"),
    # taken by findAndModify with upsert, renewed and released by update, never deleted
    leases.COLLECTION: ("find", "insert", "update"),
    # one record per stream and instance, upserted; read to kill a predecessor's session
    sessions.COLLECTION: ("find", "insert", "update"),
    # one record per stream: read at every start, upserted by the first (findAndModify)
    partitionings.COLLECTION: ("find", "insert", "update"),
    # split streams only: a heartbeat per process, upserted, read by the assigner,
    # deleted by a clean stop
    membership.COLLECTION: ("find", "insert", "update", "remove"),
    # split orders streams: a share of a user's totals, inserted by one partition, read
    # and deleted by the partition that folds it (streamer.core.deltas)
    orders.DELTAS: ("find", "insert", "remove"),
    # write-only for the service: records are for people (README: the quarantine)
    handler.QUARANTINE: ("insert",),
    # each source document's last applied state: inserted, replaced, deleted with it
    orders.MIRROR: ("find", "insert", "update", "remove"),
    inventory.MIRROR: ("find", "insert", "update", "remove"),
}
OPLOG_ACTIONS = ("find",)  # the oplog-headroom gauge only
BOOTSTRAP_ACTIONS = ("listCollections", "listIndexes", "createCollection", "createIndex", "collMod")


def privileges(
    database: str, *, oplog: bool = True, bootstrap: bool = True
) -> list[dict[str, Any]]:
    """The role's privileges on ``database``; ``oplog``/``bootstrap`` keep the optional rows."""
    out: list[dict[str, Any]] = [
        {"resource": {"db": database, "collection": c}, "actions": list(SOURCE_ACTIONS)}
        for c in SOURCES
    ]
    out += [
        {"resource": {"db": database, "collection": c}, "actions": list(actions)}
        for c, actions in STATE.items()
    ]
    if oplog:
        out.append(
            {"resource": {"db": "local", "collection": "oplog.rs"}, "actions": list(OPLOG_ACTIONS)}
        )
    if bootstrap:
        out.append(
            {"resource": {"db": database, "collection": ""}, "actions": list(BOOTSTRAP_ACTIONS)}
        )
    return out


def create_role_command(database: str, role: str = ROLE) -> dict[str, Any]:
    """``createRole`` (run on ``admin``) for the service's role."""
    return {"createRole": role, "privileges": privileges(database), "roles": []}


def create_role_js(database: str = "myapp", role: str = ROLE) -> str:
    """The mongosh snippet the README shows."""

    def resource(r: dict[str, Any]) -> str:
        return "{ " + ", ".join(f"{k}: {json.dumps(v)}" for k, v in r.items()) + " }"

    lines = [
        f"    {{ resource: {resource(p['resource'])}, actions: {json.dumps(p['actions'])} }},"
        for p in privileges(database)
    ]
    return "\n".join(
        [
            'db.getSiblingDB("admin").createRole({',
            f'  role: "{role}", roles: [], privileges: [',
            *lines,
            "  ] })",
        ]
    )

"""``streamer bootstrap``: read the database's catalog, plan against the schema, apply.

The deciding is done by :func:`streamer.core.schema_plan.plan`, which is pure; this module is the
I/O around it, kept thin so that what it does is easy to audit from the report and the
logs: it reads ``listCollections`` and ``listIndexes`` through the :class:`Mongo` seam,
runs the planned commands (``create``, ``createIndexes``, ``collMod``) in order, and with
``replace_conflicting`` drops and recreates the indexes in conflict. In check mode it
only reports what it would do. Running it twice changes nothing the second time.

Every applied change is logged (``bootstrap.collection_created``,
``bootstrap.index_created``, ``bootstrap.index_ttl_changed``,
``bootstrap.validation_changed``, ``bootstrap.index_replaced``), conflicts and notes too,
and the run ends with ``bootstrap.done`` carrying the counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from ..core.errors import BootstrapError, DatabaseError, NamespaceExists, TransientError
from ..core.schema import Schema
from ..core.schema_plan import Action, ActionKind, Conflict, Note, Plan, plan
from ..mongo import Document, Mongo

__all__ = ["BootstrapReport", "bootstrap_exit_code", "observe", "run_bootstrap"]

log = structlog.get_logger("streamer.bootstrap")

# listCollections entries, and listIndexes documents per collection
Observed = tuple[list[Document], dict[str, list[Document]]]

UP_TO_DATE = "schema up to date: no changes"
_EVENTS = {
    ActionKind.CREATE_COLLECTION: "bootstrap.collection_created",
    ActionKind.CREATE_INDEX: "bootstrap.index_created",
    ActionKind.MODIFY_INDEX_TTL: "bootstrap.index_ttl_changed",
    ActionKind.MODIFY_VALIDATION: "bootstrap.validation_changed",
}


@dataclass
class BootstrapReport:
    """What a run did (or, in check mode, would do)."""

    check: bool
    actions: list[Action] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    replaced: list[Conflict] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def unresolved_conflicts(self) -> list[Conflict]:
        return [c for c in self.conflicts if c not in self.replaced]

    @property
    def changed(self) -> bool:
        """True when this run modified the database."""
        return not self.check and bool(self.actions or self.replaced)

    @property
    def drift(self) -> bool:
        """True when the database differed from the schema when the run started."""
        return bool(self.actions or self.conflicts)

    def counts(self) -> dict[str, int]:
        by_kind = {kind.value: 0 for kind in ActionKind}
        for action in self.actions:
            by_kind[action.kind.value] += 1
        return {
            **by_kind,
            "conflicts": len(self.unresolved_conflicts),
            "replaced": len(self.replaced),
            "notes": len(self.notes),
        }

    def lines(self) -> list[str]:
        """Human-readable lines for the terminal, most important first."""
        prefix = "would " if self.check else ""
        out = [f"{prefix}{action.describe()}" for action in self.actions]
        for conflict in self.conflicts:
            if conflict in self.replaced:
                verb = "would replace" if self.check else "replaced"
                out.append(
                    f"{verb} conflicting index {conflict.collection}.{conflict.index} "
                    f"(dropped {', '.join(conflict.existing)}): "
                    f"before: {conflict.before}; after: {conflict.after}"
                )
            else:
                out.append(
                    f"CONFLICT: {conflict.describe()}; not dropped "
                    "(rerun with --replace-conflicting to drop and recreate it)"
                )
        out += [f"note: {note.message}" for note in self.notes]
        if not self.drift:
            out.append(UP_TO_DATE)
        elif self.check:
            out.append(
                f"drift: {len(self.actions)} change(s) and "
                f"{len(self.conflicts)} conflict(s) pending"
            )
        return out


def bootstrap_exit_code(report: BootstrapReport) -> int:
    """0 when the schema is (now) in place; 1 on an unreplaced conflict or on drift in check."""
    if report.unresolved_conflicts:
        return 1
    if report.check and report.drift:
        return 1
    return 0


async def observe(mongo: Mongo, schema: Schema) -> Observed:
    """The ``listCollections`` entries and, per declared existing collection, its indexes."""
    collections = await _read(mongo, "listCollections", mongo.list_collections)
    present = {str(c.get("name")) for c in collections}
    indexes: dict[str, list[Document]] = {}
    for coll in schema.collections:
        if coll.name in present:
            indexes[coll.name] = await _read(
                mongo, f"listIndexes {coll.name}", partial(mongo.list_indexes, coll.name)
            )
    return collections, indexes


async def run_bootstrap(
    mongo: Mongo,
    schema: Schema,
    *,
    check: bool = False,
    replace_conflicting: bool = False,
) -> BootstrapReport:
    """Converge the database to ``schema`` (or, with ``check``, only report the drift)."""
    collections, indexes = await observe(mongo, schema)
    the_plan: Plan = plan(schema, collections, indexes)
    report = BootstrapReport(
        check=check,
        actions=list(the_plan.actions),
        conflicts=list(the_plan.conflicts),
        notes=list(the_plan.notes),
    )
    for action in the_plan.actions:
        if not check:
            await _run(mongo, action.describe(), action.command)
            _log_action(action)
    for conflict in the_plan.conflicts:
        if replace_conflicting:
            if not check:
                await _replace(mongo, conflict)
            report.replaced.append(conflict)
        else:
            log.warning(
                "bootstrap.conflict",
                collection=conflict.collection,
                index=conflict.index,
                reason=conflict.reason,
                before=conflict.before,
                after=conflict.after,
            )
    for note in the_plan.notes:
        log.info("bootstrap.note", collection=note.collection, note=note.message)
    log.info(
        "bootstrap.done",
        check=check,
        changed=report.changed,
        drift=report.drift,
        **report.counts(),
    )
    return report


def _log_action(action: Action) -> None:
    fields: dict[str, Any] = {"collection": action.collection}
    if action.index is not None:
        fields["index"] = action.index
    if action.before is not None:
        fields["before"] = action.before
    if action.after is not None:
        fields["after"] = action.after
    log.info(_EVENTS[action.kind], **fields)


async def _replace(mongo: Mongo, conflict: Conflict) -> None:
    coll = conflict.collection
    await _run(
        mongo,
        f"drop conflicting index(es) {', '.join(conflict.existing)} on {coll}",
        {"dropIndexes": coll, "index": list(conflict.existing)},
    )
    await _run(
        mongo,
        f"recreate index {coll}.{conflict.index}",
        {"createIndexes": coll, "indexes": [dict(conflict.declared)]},
    )
    log.warning(
        "bootstrap.index_replaced",
        collection=coll,
        index=conflict.index,
        dropped=",".join(conflict.existing),
        before=conflict.before,
        after=conflict.after,
    )


async def _run(mongo: Mongo, what: str, command: Mapping[str, Any]) -> Document:
    """One catalog command; a refusal becomes BootstrapError naming what was attempted.

    No retry loop: bootstrap is a one-shot command and every step is idempotent, so the
    remedy for a transient failure is running it again (it resumes where it stopped).
    """
    try:
        return await mongo.command(command)
    except NamespaceExists as exc:
        if "create" in command:
            # Another instance created it first; the plan still holds.
            return {"ok": 1}
        raise _refused(what, exc) from exc
    except TransientError:
        raise  # the caller's retry policy decides
    except DatabaseError as exc:
        raise _refused(what, exc) from exc


def _refused(what: str, exc: DatabaseError) -> BootstrapError:
    """The server's refusal in one line: its message without the driver's reply dump."""
    message = str(exc).split(", full error:")[0]
    return BootstrapError(f"{what}: the server refused it ({exc.code}): {message}")


async def _read(
    mongo: Mongo, what: str, read: Callable[[], Awaitable[list[Document]]]
) -> list[Document]:
    try:
        return await read()
    except TransientError:
        raise  # the caller's retry policy decides
    except DatabaseError as exc:
        raise _refused(what, exc) from exc

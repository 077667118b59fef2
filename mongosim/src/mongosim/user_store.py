"""Users and roles as documents of a member's own ``admin.system.users`` and
``admin.system.roles``, written as oplog entries: the ``users.Catalog`` store of a member
of a multi-member set, so that users replicate, survive a failover and roll back with
the rest of its writes, as mongod's do.
"""

from __future__ import annotations

import copy

from .bsonutil import canonical
from .engine import Engine
from .oplog import OpKind, OplogEntry
from .users import ROLES, USERS, Doc


class EngineStore:
    """A member's ``admin.system.users``/``system.roles``: each change is one oplog entry
    (i, r or d, with its pre-image), so secondaries apply it, the journal keeps it and a
    rollback undoes it like any document write (mongod's user management commands write
    these collections the same way)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def version(self) -> object:
        # The stored documents themselves, which are never changed in place (a write, a
        # replicated entry or a rollback puts another object): equal tuples, same users.
        # Compared element by element, identity first, so an unchanged catalog costs a
        # tuple of a few references per command rather than a rebuild after every write.
        return tuple(
            None if (coll := self.engine.get_collection("admin", name)) is None
            else tuple(coll.docs.values())
            for name in (USERS, ROLES)
        )  # fmt: skip

    def load(self, coll: str) -> list[Doc]:
        found = self.engine.get_collection("admin", coll)
        return [] if found is None else [copy.deepcopy(d) for d in found.docs.values()]

    def write(self, coll: str, key: str, doc: Doc | None) -> None:
        target = self.engine.collection_or_create("admin", coll)  # logs its create once
        idk = canonical(key)
        pre = target.get(idk)
        if doc is None:
            if pre is None:
                return
            target.remove(idk)
            op: OpKind = "d"
        else:
            doc = copy.deepcopy(doc)  # the stored copy, never the catalog's working one
            target.put(idk, doc)
            op = "i" if pre is None else "r"
        entry = OplogEntry(
            op=op,
            ns=target.ns,
            key={"_id": key},
            doc=doc,
            pre=pre,
            collection_uuid=target.uuid,
        )
        self.engine.append([entry])

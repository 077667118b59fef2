"""Users and roles: the catalog mongod keeps in ``admin.system.users``/``system.roles``.

Documents have mongod's shapes (``_id: "db.name"``, ``credentials`` per mechanism with
base64 ``salt``/``storedKey``/``serverKey`` and ``iterationCount``), so ``usersInfo`` and
``rolesInfo`` answer from them directly. With a data dir the catalog is saved to
``auth.bson`` after every change (write to a temporary file, then rename) and loaded at
start-up. Sources: the manual's "createUser", "createRole", "usersInfo", "rolesInfo"
pages and ``src/mongo/db/commands/user_management_commands.cpp``.

A member of a multi-member set (``replset.py``) keeps them as mongod does: documents of its
own ``admin.system.users`` and ``admin.system.roles`` collections (a :class:`UserStore`,
``user_store.EngineStore``), written by the primary as ordinary oplog entries, so they
replicate, are journaled, and roll back through the one apply path the data uses; no
``auth.bson`` then.
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import bson
from bson.binary import Binary, UuidRepresentation

from . import privileges, scram
from .errors import MongoError

Doc = dict[str, Any]
RoleRef = tuple[str, str]  # (db, role)


def user_not_found(name: str, db: str) -> MongoError:
    return MongoError(11, f'Could not find user "{name}" for db "{db}"')


def role_not_found(name: str, db: str) -> MongoError:
    return MongoError(31, f"Could not find role: {name}@{db}")


def credentials_doc(user: str, password: str, mechanisms: Iterable[str]) -> Doc:
    out: Doc = {}
    for mech in mechanisms:
        if mech not in scram.MECHANISMS:
            raise MongoError(2, f"Unknown auth mechanism '{mech}'")
        cred = scram.make_credential(mech, user, password)
        out[mech] = {
            "iterationCount": cred.iterations,
            "salt": base64.b64encode(cred.salt).decode(),
            "storedKey": base64.b64encode(cred.stored_key).decode(),
            "serverKey": base64.b64encode(cred.server_key).decode(),
        }
    return out


def credential_of(user: Mapping[str, Any], mechanism: str) -> scram.Credential | None:
    doc = (user.get("credentials") or {}).get(mechanism)
    if doc is None:
        return None
    return scram.Credential(
        mechanism,
        base64.b64decode(doc["salt"]),
        int(doc["iterationCount"]),
        base64.b64decode(doc["storedKey"]),
        base64.b64decode(doc["serverKey"]),
    )


def role_refs(value: Any, db: str) -> list[Doc]:
    """``["read", {role, db}]`` → ``[{role, db}]``; a bare name means the command's db."""
    if not isinstance(value, list):
        raise MongoError(14, "roles must be an array")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append({"role": item, "db": db})
        elif isinstance(item, Mapping) and "role" in item and "db" in item:
            out.append({"role": str(item["role"]), "db": str(item["db"])})
        else:
            raise MongoError(9, "role names must be either strings or objects")
    return out


USERS, ROLES = "system.users", "system.roles"  # in the admin database, as mongod's


class UserStore(Protocol):
    """Where a set member's users and roles live (its ``admin.system.*`` collections)."""

    def version(self) -> object:
        """Unequal to any earlier one whenever the documents changed (a write, a replicated
        entry, a rollback)."""
        ...

    def load(self, coll: str) -> list[Doc]: ...

    def write(self, coll: str, key: str, doc: Doc | None) -> None:
        """Insert, replace (``doc``) or delete (None) the document ``_id: key``."""
        ...


class Catalog:
    """Every user and user-defined role; built-in roles are computed.

    ``users``/``roles`` are the working copies the commands read and change in place;
    ``save`` makes a change durable: to ``auth.bson`` (a lone mongosim with a data dir),
    or as writes to the member's ``store``, whose documents the copies are rebuilt from
    whenever they changed (a replicated entry, a rollback)."""

    def __init__(self, data_dir: Path | None = None, store: UserStore | None = None) -> None:
        self._users: dict[tuple[str, str], Doc] = {}
        self._roles: dict[tuple[str, str], Doc] = {}
        self.store = store
        self._version: object = object()  # equal to no store's: the first read loads
        self._saved: dict[tuple[str, str, str], bytes] = {}  # (coll, db, name): as stored
        self._path = data_dir / "auth.bson" if data_dir is not None and store is None else None
        if self._path is not None and self._path.exists():
            saved = bson.decode(self._path.read_bytes())
            self._users = {(u["db"], u["user"]): u for u in saved.get("users", [])}
            self._roles = {(r["db"], r["role"]): r for r in saved.get("roles", [])}

    @property
    def users(self) -> dict[tuple[str, str], Doc]:
        self._refresh()
        return self._users

    @property
    def roles(self) -> dict[tuple[str, str], Doc]:
        self._refresh()
        return self._roles

    def _refresh(self) -> None:
        if self.store is None or self.store.version() == self._version:
            return
        self._users = {(u["db"], u["user"]): u for u in self.store.load(USERS)}
        self._roles = {(r["db"], r["role"]): r for r in self.store.load(ROLES)}
        self._saved = self._encoded()
        self._version = self.store.version()

    def _encoded(self) -> dict[tuple[str, str, str], bytes]:
        out = {(USERS, db, name): bson.encode(u) for (db, name), u in self._users.items()}
        out.update({(ROLES, db, name): bson.encode(r) for (db, name), r in self._roles.items()})
        return out

    def save(self) -> None:
        if self.store is not None:
            self._save_to_store(self.store)
            return
        if self._path is None:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        payload = {"users": list(self._users.values()), "roles": list(self._roles.values())}
        tmp.write_bytes(bson.encode(payload))
        os.replace(tmp, self._path)

    def _save_to_store(self, store: UserStore) -> None:
        """Write what the commands changed since the last load or save, one document per
        oplog entry (a dropRole that edits its holders writes each of them)."""
        now = self._encoded()
        for key in sorted(self._saved.keys() | now.keys()):
            if self._saved.get(key) == now.get(key):
                continue
            coll, db, name = key
            doc = self._users.get((db, name)) if coll == USERS else self._roles.get((db, name))
            store.write(coll, f"{db}.{name}", doc)
        self._saved = now
        self._version = store.version()

    # -- users ---------------------------------------------------------------------
    def add_user(self, db: str, name: str, password: str | None, roles: list[Doc],
                 mechanisms: Iterable[str], custom: Any = None) -> None:  # fmt: skip
        if (db, name) in self.users:
            raise MongoError(51003, f'User "{name}@{db}" already exists', code_name="Location51003")
        self.check_roles(roles)
        user: Doc = {
            "_id": f"{db}.{name}",
            "userId": Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD),
            "user": name,
            "db": db,
            "credentials": credentials_doc(name, password or "", mechanisms) if password else {},
            "roles": roles,
        }
        if custom is not None:
            user["customData"] = custom
        self.users[(db, name)] = user
        self.save()

    def user(self, db: str, name: str) -> Doc:
        found = self.users.get((db, name))
        if found is None:
            raise user_not_found(name, db)
        return found

    # -- roles ---------------------------------------------------------------------
    def role_exists(self, db: str, name: str) -> bool:
        return (db, name) in self.roles or privileges.builtin_privileges(name, db) is not None

    def check_roles(self, roles: Iterable[Mapping[str, Any]]) -> None:
        for ref in roles:
            if not self.role_exists(ref["db"], ref["role"]):
                raise role_not_found(ref["role"], ref["db"])

    def closure(self, roles: Iterable[Mapping[str, Any]]) -> Iterator[RoleRef]:
        """Every role reachable from ``roles`` (each once), including them."""
        seen: set[RoleRef] = set()
        stack = [(r["db"], r["role"]) for r in roles]
        while stack:
            ref = stack.pop()
            if ref in seen:
                continue
            seen.add(ref)
            yield ref
            custom = self.roles.get(ref)
            if custom is not None:
                stack.extend((r["db"], r["role"]) for r in custom.get("roles", []))

    def privileges_of(self, roles: Iterable[Mapping[str, Any]]) -> list[Doc]:
        out: list[Doc] = []
        for db, name in self.closure(roles):
            builtin = privileges.builtin_privileges(name, db)
            if builtin is not None:
                out.extend(builtin)
            elif (db, name) in self.roles:
                out.extend(self.roles[(db, name)].get("privileges", []))
        return out

    def role_info(self, db: str, name: str, show_privileges: bool) -> Doc:
        builtin = privileges.builtin_privileges(name, db)
        own = self.roles.get((db, name))
        direct = [] if own is None else list(own.get("roles", []))
        inherited = [
            {"role": r, "db": d}
            for d, r in self.closure([{"role": name, "db": db}])
            if (d, r) != (db, name)
        ]
        info: Doc = {
            "_id": f"{db}.{name}",
            "role": name,
            "db": db,
            "isBuiltin": builtin is not None,
            "roles": direct,
            "inheritedRoles": inherited,
        }
        if show_privileges:
            own_privileges = own.get("privileges", []) if own is not None else []
            info["privileges"] = builtin if builtin is not None else own_privileges
            info["inheritedPrivileges"] = self.privileges_of([{"role": name, "db": db}])
        return info

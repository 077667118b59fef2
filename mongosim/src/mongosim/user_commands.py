"""The user and role management commands (manual: "User Management Commands",
"Role Management Commands"; ``src/mongo/db/commands/user_management_commands.cpp``).

``mechanisms`` defaults to both SCRAM mechanisms, as mongod's does. Passwords are never
logged or echoed back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import privileges, scram
from .auth import Auth, ConnectionAuth, Reply
from .errors import MongoError
from .privileges import on_database
from .registry import Runs, command
from .users import credentials_doc, role_not_found, role_refs


def _name(cmd: Mapping[str, Any], key: str) -> str:
    value = cmd.get(key)
    if not isinstance(value, str) or not value:
        raise MongoError(2, f"{key} must be a non-empty string")
    return value


def _mechanisms(cmd: Mapping[str, Any]) -> list[str]:
    mechs = cmd.get("mechanisms", list(scram.MECHANISMS))
    if not isinstance(mechs, list) or not mechs:
        raise MongoError(2, "mechanisms field must not be empty")
    return [str(m) for m in mechs]


@command("createUser", runs=Runs.AUTH, writes=True, needs=on_database("createUser"))
def create_user(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "createUser")
    password = cmd.get("pwd")
    if password is not None and not isinstance(password, str):
        raise MongoError(14, "pwd must be a string")
    roles = role_refs(cmd.get("roles", []), db)
    auth.catalog.add_user(db, name, password, roles, _mechanisms(cmd), cmd.get("customData"))
    return {}


@command("updateUser", runs=Runs.AUTH, writes=True, needs=on_database("changePassword"))
def update_user(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "updateUser")
    user = auth.catalog.user(db, name)
    # Every check before the first change: the catalog's copies are changed in place.
    roles = role_refs(cmd["roles"], db) if "roles" in cmd else None
    if roles is not None:
        auth.catalog.check_roles(roles)
    if "pwd" in cmd:
        mechs = cmd.get("mechanisms") or list(user.get("credentials") or scram.MECHANISMS)
        user["credentials"] = credentials_doc(name, str(cmd["pwd"]), mechs)
    if roles is not None:
        user["roles"] = roles
    if "customData" in cmd:
        user["customData"] = cmd["customData"]
    auth.catalog.save()
    return {}


@command("dropUser", runs=Runs.AUTH, writes=True, needs=on_database("dropUser"))
def drop_user(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "dropUser")
    auth.catalog.user(db, name)
    del auth.catalog.users[(db, name)]
    auth.catalog.save()
    return {}


def _grant(auth: Auth, db: str, cmd: Mapping[str, Any], key: str, grant: bool) -> Reply:
    name = _name(cmd, key)
    user = auth.catalog.user(db, name)
    roles = role_refs(cmd.get("roles", []), db)
    auth.catalog.check_roles(roles)
    kept = [r for r in user.get("roles", []) if r not in roles]
    user["roles"] = kept + roles if grant else kept
    auth.catalog.save()
    return {}


def _targets(value: Any, db: str, kind: str) -> list[tuple[str, str]] | None:
    """usersInfo's (``kind`` "user") or rolesInfo's ("role") argument as (db, name) pairs;
    None for "every one of this db"."""
    if value == 1 or value is True:
        return None
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append((db, item))
        elif isinstance(item, Mapping) and kind in item:
            out.append((str(item.get("db", db)), str(item[kind])))
        else:
            raise MongoError(2, "User and role names must be either strings or objects")
    return out


@command("usersInfo", runs=Runs.AUTH, needs=on_database("viewUser"))
def users_info(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    value = cmd.get("usersInfo")
    if isinstance(value, Mapping) and value.get("forAllDBs"):
        found = list(auth.catalog.users.values())
    else:
        targets = _targets(value, db, "user")
        if targets is None:
            found = [u for (d, _), u in auth.catalog.users.items() if d == db]
        else:
            found = [auth.catalog.users[t] for t in targets if t in auth.catalog.users]
    out = []
    for user in found:
        info = {k: v for k, v in user.items() if k != "credentials"}
        info["mechanisms"] = sorted(user.get("credentials") or {})
        if cmd.get("showCredentials"):
            info["credentials"] = user.get("credentials", {})
        if cmd.get("showPrivileges"):
            info["inheritedRoles"] = [
                {"role": r, "db": d} for d, r in auth.catalog.closure(user.get("roles", []))
            ]
            info["inheritedPrivileges"] = auth.catalog.privileges_of(user.get("roles", []))
        out.append(info)
    return {"users": out}


def _privileges_arg(cmd: Mapping[str, Any]) -> list[dict[str, Any]]:
    privs = cmd.get("privileges", [])
    if not isinstance(privs, list):
        raise MongoError(14, "privileges must be an array")
    for p in privs:
        if not isinstance(p, Mapping) or "resource" not in p or "actions" not in p:
            raise MongoError(9, "A privilege must have a resource and actions")
    return [{"resource": dict(p["resource"]), "actions": list(p["actions"])} for p in privs]


@command("createRole", runs=Runs.AUTH, writes=True, needs=on_database("createRole"))
def create_role(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "createRole")
    if "privileges" not in cmd or "roles" not in cmd:
        raise MongoError(9, '"createRole" command requires a "privileges" and a "roles" array')
    if auth.catalog.role_exists(db, name):
        raise MongoError(51002, f'Role "{name}@{db}" already exists', code_name="Location51002")
    roles = role_refs(cmd["roles"], db)
    auth.catalog.check_roles(roles)
    auth.catalog.roles[(db, name)] = {
        "_id": f"{db}.{name}",
        "role": name,
        "db": db,
        "privileges": _privileges_arg(cmd),
        "roles": roles,
    }
    auth.catalog.save()
    return {}


@command("updateRole", runs=Runs.AUTH, writes=True, needs=on_database("createRole"))
def update_role(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "updateRole")
    role = auth.catalog.roles.get((db, name))
    if role is None:
        raise role_not_found(name, db)
    roles = role_refs(cmd["roles"], db) if "roles" in cmd else None
    if roles is not None:
        auth.catalog.check_roles(roles)
    if "privileges" in cmd:
        role["privileges"] = _privileges_arg(cmd)
    if roles is not None:
        role["roles"] = roles
    auth.catalog.save()
    return {}


@command("dropRole", runs=Runs.AUTH, writes=True, needs=on_database("dropRole"))
def drop_role(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    name = _name(cmd, "dropRole")
    if privileges.builtin_privileges(name, db) is not None:
        raise MongoError(2, f"Cannot drop built-in role: {name}@{db}")
    if auth.catalog.roles.pop((db, name), None) is None:
        raise role_not_found(name, db)
    ref = {"role": name, "db": db}
    for holder in [*auth.catalog.users.values(), *auth.catalog.roles.values()]:
        holder["roles"] = [r for r in holder.get("roles", []) if r != ref]
    auth.catalog.save()
    return {}


@command("rolesInfo", runs=Runs.AUTH, needs=on_database("viewRole"))
def roles_info(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    value = cmd.get("rolesInfo")
    show = bool(cmd.get("showPrivileges"))
    names = _targets(value, db, "role")
    if names is None:
        names = [(d, r) for d, r in auth.catalog.roles if d == db]
        if cmd.get("showBuiltinRoles"):
            names += [(db, r) for r in privileges.BUILTIN_ROLES if auth.catalog.role_exists(db, r)]
    return {
        "roles": [
            auth.catalog.role_info(d, r, show) for d, r in names if auth.catalog.role_exists(d, r)
        ]
    }


@command("grantRolesToUser", runs=Runs.AUTH, writes=True, needs=on_database("grantRole"))
def grant_roles_to_user(auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth) -> Reply:
    return _grant(auth, db, cmd, "grantRolesToUser", True)


@command("revokeRolesFromUser", runs=Runs.AUTH, writes=True, needs=on_database("revokeRole"))
def revoke_roles_from_user(
    auth: Auth, db: str, cmd: Mapping[str, Any], conn: ConnectionAuth
) -> Reply:
    return _grant(auth, db, cmd, "revokeRolesFromUser", False)

"""Privileges: resources, actions, the built-in roles, and the builders of what a command needs.

Sources: the MongoDB manual's "Resource Document on Self-Managed Deployments",
"Privilege Actions" and "Built-In Roles" pages, and mongod's
``src/mongo/db/auth/builtin_roles.yml`` / each command's ``checkAuthForOperation``.

A resource is ``{db, collection}``, ``{cluster: true}`` or ``{anyResource: true}``. The
empty string is a wildcard: ``{db: "app", collection: ""}`` is every non-system collection
of ``app`` (and the database itself), ``{db: "", collection: ""}`` every non-system
collection of every database.

What a command needs is declared with the command (:mod:`.registry`: ``access`` and
``needs``), with the builders here: :func:`on_collection`, :func:`on_database` and
:func:`on_cluster` for one action on the resource the command runs on; :func:`insert`,
:func:`update`, :func:`find_and_modify`, :func:`aggregate` and :func:`rename_collection`
for the commands whose needs depend on their body (upserts, ``$out``/``$merge``,
``bypassDocumentValidation``); :func:`root` where mongosim asks root instead of the
finer privilege mongod checks. getMore and killCursors are checked against the cursor's owners
(:mod:`.auth`); commitTransaction/abortTransaction need only a user, as in mongod, whose
commands inside the transaction were each checked. Simplification, documented in
the README: ``$lookup``/``$unionWith`` in a pipeline are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bson.binary import Binary
from bson.timestamp import Timestamp

from .registry import Need, Needs

Resource = Mapping[str, Any]
Privilege = Mapping[str, Any]  # {resource: Resource, actions: [str, ...]}

CLUSTER: dict[str, Any] = {"cluster": True}

_READ = ["changeStream", "collStats", "dbHash", "dbStats", "find", "killCursors",
         "listCollections", "listIndexes", "listSearchIndexes"]  # fmt: skip
_READ_WRITE = [*_READ, "convertToCapped", "createCollection", "createIndex", "dropCollection",
               "dropIndex", "insert", "remove", "renameCollectionSameDB", "update"]  # fmt: skip
_DB_ADMIN = ["bypassDocumentValidation", "collMod", "collStats", "compact", "convertToCapped",
             "createCollection", "createIndex", "dbStats", "dropCollection", "dropDatabase",
             "dropIndex", "enableProfiler", "listCollections", "listIndexes",
             "planCacheIndexFilter", "planCacheRead", "planCacheWrite", "reIndex",
             "renameCollectionSameDB",
             "storageDetails", "validate"]  # fmt: skip
_CLUSTER_MONITOR = ["connPoolStats", "getCmdLineOpts", "getLog", "getParameter",
                    "hostInfo", "listDatabases", "listSessions", "replSetGetConfig",
                    "replSetGetStatus", "serverStatus", "top"]  # fmt: skip
_USER_ADMIN = ["changeCustomData", "changePassword", "createRole", "createUser", "dropRole",
               "dropUser", "grantRole", "revokeRole", "setAuthenticationRestriction",
               "viewRole", "viewUser"]  # fmt: skip

BUILTIN_ROLES = ("read", "readWrite", "dbAdmin", "userAdmin", "clusterMonitor",
                 "readAnyDatabase", "root")  # fmt: skip
_ADMIN_ONLY = frozenset({"clusterMonitor", "readAnyDatabase", "root"})


def builtin_privileges(role: str, db: str) -> list[dict[str, Any]] | None:
    """A built-in role's privileges on ``db``, or None if ``role`` is not built in there."""
    if role in _ADMIN_ONLY and db != "admin":
        return None
    here = {"db": db, "collection": ""}
    table: dict[str, list[dict[str, Any]]] = {
        "read": [{"resource": here, "actions": _READ}],
        "readWrite": [{"resource": here, "actions": _READ_WRITE}],
        "dbAdmin": [{"resource": here, "actions": _DB_ADMIN}],
        "userAdmin": [{"resource": here, "actions": _USER_ADMIN}],
        "clusterMonitor": [
            {"resource": CLUSTER, "actions": _CLUSTER_MONITOR},
            {"resource": {"db": "local", "collection": "oplog.rs"}, "actions": ["find"]},
        ],
        "readAnyDatabase": [
            {"resource": {"db": "", "collection": ""}, "actions": _READ},
            {"resource": CLUSTER, "actions": ["listDatabases"]},
        ],
        "root": [{"resource": {"anyResource": True}, "actions": ["anyAction"]}],
    }
    return table.get(role)


def matches(pattern: Resource, resource: Resource) -> bool:
    """Whether a privilege's resource pattern covers the resource a command needs."""
    if pattern.get("anyResource"):
        return True
    if "cluster" in resource or "cluster" in pattern:
        return bool(pattern.get("cluster")) and bool(resource.get("cluster"))
    p_db, p_coll = pattern.get("db", ""), pattern.get("collection", "")
    db, coll = resource.get("db", ""), resource.get("collection", "")
    if p_db and p_db != db:
        return False
    if p_coll:
        return bool(p_coll == coll)
    # A database pattern covers the database and its non-system collections.
    return not coll.startswith("system.")


def allowed(privileges: Iterable[Privilege], resource: Resource, action: str) -> bool:
    return any(
        matches(p["resource"], resource) and (action in p["actions"] or "anyAction" in p["actions"])
        for p in privileges
    )


def _ns(db: str, coll: Any) -> dict[str, Any]:
    return {"db": db, "collection": coll if isinstance(coll, str) else ""}


def ns_resource(db: str, coll: str) -> dict[str, Any]:
    """The resource of namespace ``db.coll``; a listCollections cursor's
    (``db.$cmd.listCollections``) is the database's, as in mongod."""
    return _ns(db, "" if coll.startswith("$cmd") else coll)


def _target(cmd: Mapping[str, Any]) -> Any:
    """The value of the command's first key, its name as sent, whatever its case: the
    namespace it runs on (the server found the command by that key)."""
    return next(iter(cmd.values()), None)


def aggregate(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    target = _target(cmd)
    stages = [next(iter(s), "") for s in cmd.get("pipeline") or [] if isinstance(s, Mapping)]
    needs: list[Need] = []
    if stages and stages[0] == "$changeStream":
        spec = (cmd.get("pipeline") or [{}])[0].get("$changeStream") or {}
        every = {"db": "", "collection": ""}
        where = every if spec.get("allChangesForCluster") else _ns(db, target)
        needs += [(where, "changeStream"), (where, "find")]
    elif isinstance(target, str):
        needs.append((_ns(db, target), "find"))
    for stage in cmd.get("pipeline") or []:
        for key in ("$out", "$merge"):
            if isinstance(stage, Mapping) and key in stage:
                target, actions = _output(db, key, stage[key])
                needs += [(target, a) for a in actions]
                if cmd.get("bypassDocumentValidation"):
                    needs.append((target, "bypassDocumentValidation"))
    return needs


def _output(db: str, key: str, spec: Any) -> tuple[dict[str, Any], list[str]]:
    """The target of ``$out``/``$merge`` and the actions needed there: ``$out`` replaces
    the collection, insert and remove (SERVER-10963); ``$merge`` needs insert when
    unmatched documents are inserted and update unless ``whenMatched`` is fail
    (``document_source_merge.cpp``'s merge-mode descriptors)."""
    if key == "$out":
        if isinstance(spec, Mapping):
            return _ns(str(spec.get("db", db)), spec.get("coll")), ["insert", "remove"]
        return _ns(db, spec), ["insert", "remove"]
    options: Mapping[str, Any] = spec if isinstance(spec, Mapping) else {"into": spec}
    into = options.get("into")
    target = (
        _ns(str(into.get("db", db)), into.get("coll"))
        if isinstance(into, Mapping)
        else _ns(db, into)
    )
    actions = ["insert"] if options.get("whenNotMatched", "insert") == "insert" else []
    if options.get("whenMatched", "merge") != "fail":
        actions.append("update")
    return target, actions


def find_and_modify(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    ns = _ns(db, _target(cmd))
    needs: list[Need] = [(ns, "find"), (ns, "remove" if cmd.get("remove") else "update")]
    if cmd.get("upsert"):
        needs.append((ns, "insert"))
    return needs + _bypass(ns, cmd)


def update(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    ns = _ns(db, _target(cmd))
    needs: list[Need] = [(ns, "update")]
    if any(u.get("upsert") for u in cmd.get("updates") or [] if isinstance(u, Mapping)):
        needs.append((ns, "insert"))
    return needs + _bypass(ns, cmd)


def _bypass(ns: dict[str, Any], cmd: Mapping[str, Any]) -> list[Need]:
    """A write that skips the validator needs bypassDocumentValidation there too (the
    manual's "Privilege Actions"; mongod's write commands' auth checks)."""
    return [(ns, "bypassDocumentValidation")] if cmd.get("bypassDocumentValidation") else []


def on_collection(action: str) -> Needs:
    """Needs ``action`` on the collection the command names (``{find: "c"}``: ``db.c``)."""

    def needs(db: str, cmd: Mapping[str, Any]) -> list[Need]:
        return [(_ns(db, _target(cmd)), action)]

    return needs


def on_database(action: str) -> Needs:
    """Needs ``action`` on the database the command runs on."""

    def needs(db: str, cmd: Mapping[str, Any]) -> list[Need]:
        return [({"db": db, "collection": ""}, action)]

    return needs


def on_cluster(action: str) -> Needs:
    """Needs ``action`` on the cluster resource."""

    def needs(db: str, cmd: Mapping[str, Any]) -> list[Need]:
        return [(CLUSTER, action)]

    return needs


def root(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    """Needs root (``anyAction`` on ``anyResource``): a command declares this where
    mongosim does not model the finer privilege mongod checks."""
    return [({"anyResource": True}, "anyAction")]


def insert(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    ns = _ns(db, _target(cmd))
    return [(ns, "insert"), *_bypass(ns, cmd)]


def rename_collection(db: str, cmd: Mapping[str, Any]) -> list[Need]:
    """renameCollection (run on admin) names full namespaces: the source's
    renameCollectionSameDB and the target's insert."""
    src, dst = str(_target(cmd)), str(cmd.get("to", ""))
    s_db, _, s_coll = src.partition(".")
    d_db, _, d_coll = dst.partition(".")
    return [(_ns(s_db, s_coll), "renameCollectionSameDB"), (_ns(d_db, d_coll), "insert")]


def shell_repr(value: Any) -> str:
    """A value as mongod's ``BSONObj::toString`` prints it in error messages."""
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k}: {shell_repr(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[ " + ", ".join(shell_repr(v) for v in value) + " ]" if value else "[]"
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Binary) and value.subtype == 4:
        return f'UUID("{value.as_uuid()}")'
    if isinstance(value, Timestamp):
        return f"Timestamp({value.time}, {value.inc})"
    return str(value)

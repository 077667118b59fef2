"""Aggregation stages (manual: "Aggregation Stages").

``run_pipeline`` streams documents through the stages; stages that need everything
($group, $sort, $facet, $bucket, $count, $merge, $out) materialise their input.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from bson.int64 import Int64

from .accumulators import GROUP_ACCUMULATORS
from .bsonutil import MISSING, canonical, compare, get_path
from .collation import collated
from .compiled import compile_inclusion
from .errors import MongoError
from .expressions import evaluate
from .matching import compile_filter
from .sorting import compile_sort

Docs = Iterator[dict[str, Any]]


class PipelineContext(Protocol):
    now: _dt.datetime
    variables: dict[str, Any]  # the command's let
    collation: Any  # the command's collation, or None

    def collection_documents(
        self, coll: str, db: str | None = None
    ) -> Iterable[Mapping[str, Any]]: ...

    def merge_documents(self, spec: Mapping[str, Any], docs: list[dict[str, Any]]) -> None: ...

    def local_sessions(self) -> list[dict[str, Any]]: ...

    def out_documents(
        self, target: str | Mapping[str, Any], docs: list[dict[str, Any]]
    ) -> None: ...


StageFn = Callable[[Docs, Any, "PipelineContext | None"], Docs]


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    for part in parts[:-1]:
        nxt = doc.get(part)
        if not isinstance(nxt, dict):
            nxt = doc[part] = {}
        else:
            nxt = doc[part] = dict(nxt)
        doc = nxt
    doc[parts[-1]] = value


def _remove_path(doc: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if head not in doc:
        return
    if not rest:
        del doc[head]
        return
    sub = doc[head]
    if isinstance(sub, dict):
        sub = doc[head] = dict(sub)
        _remove_path(sub, rest)
    elif isinstance(sub, list):
        doc[head] = [_without(e, rest) for e in sub]


def _without(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        copy = dict(value)
        _remove_path(copy, path)
        return copy
    return value


# -- $project / $addFields / $unset ---------------------------------------------------------
def _is_exclusion(spec: Mapping[str, Any]) -> bool:
    """An exclusion projection lists only 0/false values (``_id`` may go either way)."""
    values = [v for k, v in spec.items() if k != "_id"]
    if not values:
        return spec.get("_id", 1) in (0, False)
    return all(not isinstance(v, Mapping | str | list) and v in (0, False) for v in values)


def _project_doc(
    doc: Mapping[str, Any],
    spec: Mapping[str, Any],
    variables: dict[str, Any],
    root: Mapping[str, Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.get("_id", 1) not in (0, False) and "_id" in doc and "_id" not in spec:
        out["_id"] = doc["_id"]
    for key, value in spec.items():
        if value is True or (isinstance(value, int) and not isinstance(value, bool) and value):
            picked = _pick(doc, key.split("."))
            if picked is not MISSING:
                _merge_into(out, picked)
        elif value in (0, False):
            continue
        elif isinstance(value, Mapping) and value and not next(iter(value)).startswith("$"):
            sub = doc.get(key)
            if isinstance(sub, Mapping):
                out[key] = _project_doc(sub, value, variables, root)
            elif isinstance(sub, list):
                out[key] = [
                    _project_doc(e, value, variables, root) for e in sub if isinstance(e, Mapping)
                ]
        else:
            result = evaluate(value, root, variables)
            if result is not MISSING:
                _set_path(out, key, result)
    return out


def _pick(doc: Mapping[str, Any], parts: list[str]) -> Any:
    """The part of ``doc`` an inclusion of the dotted path keeps, nested; or MISSING."""
    head = parts[0]
    if head not in doc:
        return MISSING
    sub = doc[head]
    if len(parts) == 1:
        return {head: sub}
    if isinstance(sub, Mapping):
        inner = _pick(sub, parts[1:])
        return MISSING if inner is MISSING else {head: inner}
    if isinstance(sub, list):
        kept = [_pick(e, parts[1:]) for e in sub if isinstance(e, Mapping)]
        return {head: [k for k in kept if k is not MISSING]}
    return MISSING


def _merge_into(out: dict[str, Any], picked: Mapping[str, Any]) -> None:
    for key, value in picked.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            merged = dict(out[key])
            _merge_into(merged, value)
            out[key] = merged
        else:
            out[key] = value


def _stage_project(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    if not spec:
        raise MongoError(51272, "$project specification must have at least one field")
    if _is_exclusion(spec):
        paths = [k for k, v in spec.items() if v in (0, False)]
        for doc in docs:
            out = dict(doc)
            for path in paths:
                _remove_path(out, path)
            yield out
        return
    # Hot path (a change stream's $project runs once per event): compiled once per run.
    project = compile_inclusion(spec)
    if project is not None:
        for doc in docs:
            yield project(doc)
        return
    for doc in docs:
        yield _project_doc(doc, spec, {}, doc)


def _stage_add_fields(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    for doc in docs:
        out = dict(doc)
        for key, expr in spec.items():
            value = evaluate(expr, doc, _vars(ctx))
            if value is MISSING:
                _remove_path(out, key)
            else:
                _set_path(out, key, value)
        yield out


def _vars(ctx: PipelineContext | None) -> dict[str, Any]:
    return {**ctx.variables, "NOW": ctx.now} if ctx is not None else {}


def _stage_unset(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    paths = [spec] if isinstance(spec, str) else list(spec)
    for doc in docs:
        out = dict(doc)
        for path in paths:
            _remove_path(out, path)
        yield out


def _stage_replace_root(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    expr = spec["newRoot"] if isinstance(spec, Mapping) and "newRoot" in spec else spec
    for doc in docs:
        value = evaluate(expr, doc, _vars(ctx))
        if not isinstance(value, dict):
            raise MongoError(
                40228,
                "'replacement document' must evaluate to an object, but "
                f"resulting value was: {value!r}",
            )
        yield value


# -- filtering and ordering -------------------------------------------------------------------
def _stage_match(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    matcher = collated(compile_filter, spec, ctx.collation if ctx is not None else None)
    return (d for d in docs if matcher(d))


def _stage_sort(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    return iter(sorted(docs, key=compile_sort(spec)))


def _stage_limit(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    n = int(spec)
    if n <= 0:
        raise MongoError(15958, "the limit must be positive")
    for i, doc in enumerate(docs):
        if i >= n:
            return
        yield doc


def _stage_skip(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    for i, doc in enumerate(docs):
        if i >= int(spec):
            yield doc


def _stage_sample(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    items = list(docs)
    return iter(random.sample(items, min(int(spec["size"]), len(items))))


def _stage_unwind(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    opts = {"path": spec} if isinstance(spec, str) else dict(spec)
    path = opts["path"][1:]
    index_field = opts.get("includeArrayIndex")
    preserve = opts.get("preserveNullAndEmptyArrays", False)
    for doc in docs:
        value = get_path(doc, path)
        if isinstance(value, list) and value:
            for i, element in enumerate(value):
                out = dict(doc)
                _set_path(out, path, element)
                if index_field:
                    out[index_field] = Int64(i)  # mongod reports the index as a long
                yield out
        elif isinstance(value, list) or value is None or value is MISSING:
            if preserve:
                out = dict(doc)
                if isinstance(value, list):
                    _remove_path(out, path)
                if index_field:
                    out[index_field] = None
                yield out
        else:
            out = dict(doc)
            if index_field:
                out[index_field] = None
            yield out


# -- grouping ---------------------------------------------------------------------------------
def _stage_group(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    if "_id" not in spec:
        raise MongoError(15955, "a group specification must include an _id")
    fields = {k: v for k, v in spec.items() if k != "_id"}
    accs: list[tuple[str, str, Any]] = []
    for name, acc in fields.items():
        ((op, arg),) = acc.items()
        if op not in GROUP_ACCUMULATORS and op != "$count":
            raise MongoError(15952, f"unknown group operator '{op}'")
        accs.append((name, op, arg))
    groups: dict[Any, tuple[Any, list[list[Any]]]] = {}
    variables = _vars(ctx)
    for doc in docs:
        key_value = evaluate(spec["_id"], doc, variables)
        key_value = None if key_value is MISSING else key_value
        key = canonical(key_value)
        entry = groups.get(key)
        if entry is None:
            entry = groups[key] = (key_value, [[] for _ in accs])
        for i, (_, op, arg) in enumerate(accs):
            entry[1][i].append(1 if op == "$count" else evaluate(arg, doc, variables))
    for key_value, columns in groups.values():
        out: dict[str, Any] = {"_id": key_value}
        for (name, op, _), values in zip(accs, columns, strict=True):
            out[name] = len(values) if op == "$count" else GROUP_ACCUMULATORS[op](values)
        yield out


def _stage_count(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    n = sum(1 for _ in docs)
    if n:
        yield {spec: n}


def _stage_sort_by_count(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    grouped = _stage_group(docs, {"_id": spec, "count": {"$sum": 1}}, ctx)
    return iter(sorted(grouped, key=lambda d: -d["count"]))


def _stage_bucket(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    bounds = spec["boundaries"]
    output = spec.get("output") or {"count": {"$sum": 1}}
    buckets: dict[int | str, list[dict[str, Any]]] = {}
    for doc in docs:
        value = evaluate(spec["groupBy"], doc, _vars(ctx))
        slot: int | str | None = None
        for i in range(len(bounds) - 1):
            if compare(bounds[i], value) <= 0 < compare(bounds[i + 1], value):
                slot = i
                break
        if slot is None:
            if "default" not in spec:
                raise MongoError(
                    40066,
                    "$bucket could not find a matching branch for an input, "
                    "and no default was specified.",
                )
            slot = "default"
        buckets.setdefault(slot, []).append(doc)
    order: list[int | str] = [i for i in range(len(bounds) - 1) if i in buckets]
    if "default" in buckets:
        order.append("default")
    for slot in order:
        key = spec["default"] if isinstance(slot, str) else bounds[slot]
        [row] = list(_stage_group(iter(buckets[slot]), {"_id": {"$literal": key}, **output}, ctx))
        yield row


def _stage_facet(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    items = list(docs)
    yield {name: run_pipeline(items, pipeline, ctx) for name, pipeline in spec.items()}


# -- joins and writes ---------------------------------------------------------------------------
def _foreign(
    ctx: PipelineContext | None, spec: Mapping[str, Any], key: str
) -> list[Mapping[str, Any]]:
    if ctx is None:
        raise MongoError(2, f"{key} is not allowed in this context")
    source = spec.get("from") or spec.get("coll")
    if isinstance(source, Mapping):
        return list(ctx.collection_documents(source["coll"], source.get("db")))
    return list(ctx.collection_documents(source)) if source else []


def _stage_lookup(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    foreign = _foreign(ctx, spec, "$lookup")
    local_field, foreign_field = spec.get("localField"), spec.get("foreignField")
    index: dict[Any, list[Mapping[str, Any]]] = {}
    if foreign_field:
        for f in foreign:
            value = get_path(f, foreign_field)
            values = value if isinstance(value, list) else [value]
            for v in values or [None]:
                index.setdefault(canonical(None if v is MISSING else v), []).append(f)
    for doc in docs:
        if local_field:
            value = get_path(doc, local_field)
            values = value if isinstance(value, list) else [value]
            matched: dict[int, Mapping[str, Any]] = {}
            for v in values or [None]:
                for f in index.get(canonical(None if v is MISSING else v), []):
                    matched[id(f)] = f
            joined = [dict(m) for m in matched.values()]
        else:
            joined = [dict(f) for f in foreign]
        if "pipeline" in spec:
            joined = run_pipeline(joined, spec["pipeline"], ctx)
        out = dict(doc)
        _set_path(out, spec["as"], joined)
        yield out


def _stage_union_with(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    yield from docs
    opts: Mapping[str, Any] = {"coll": spec} if isinstance(spec, str) else spec
    yield from run_pipeline(_foreign(ctx, opts, "$unionWith"), opts.get("pipeline", []), ctx)


def _stage_documents(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    return iter([dict(d) for d in evaluate(spec, {}, _vars(ctx))])


def _stage_list_local_sessions(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    """$listLocalSessions: the sessions in this server's memory (all users': mongosim has
    no authentication), as ``{_id: {id, uid}, lastUse}``."""
    return iter(ctx.local_sessions() if ctx is not None else [])


def _stage_merge(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    if ctx is None:
        raise MongoError(2, "$merge is not allowed in this context")
    opts = (
        {"into": spec}
        if isinstance(spec, str | Mapping) and not (isinstance(spec, Mapping) and "into" in spec)
        else spec
    )
    ctx.merge_documents(opts, list(docs))
    return iter(())


def _stage_out(docs: Docs, spec: Any, ctx: PipelineContext | None) -> Docs:
    if ctx is None:
        raise MongoError(2, "$out is not allowed in this context")
    ctx.out_documents(spec, list(docs))
    return iter(())


STAGES: dict[str, StageFn] = {
    "$match": _stage_match,
    "$project": _stage_project,
    "$addFields": _stage_add_fields,
    "$set": _stage_add_fields,
    "$unset": _stage_unset,
    "$replaceRoot": _stage_replace_root,
    "$replaceWith": _stage_replace_root,
    "$sort": _stage_sort,
    "$limit": _stage_limit,
    "$skip": _stage_skip,
    "$sample": _stage_sample,
    "$unwind": _stage_unwind,
    "$group": _stage_group,
    "$count": _stage_count,
    "$sortByCount": _stage_sort_by_count,
    "$bucket": _stage_bucket,
    "$facet": _stage_facet,
    "$lookup": _stage_lookup,
    "$unionWith": _stage_union_with,
    "$documents": _stage_documents,
    "$merge": _stage_merge,
    "$out": _stage_out,
    "$listLocalSessions": _stage_list_local_sessions,
}
_LAST_ONLY = frozenset({"$merge", "$out"})


def _parse(pipeline: Sequence[Mapping[str, Any]]) -> list[tuple[StageFn, Any, str]]:
    parsed = []
    for i, stage in enumerate(pipeline):
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise MongoError(
                40323, "A pipeline stage specification object must contain exactly one field."
            )
        ((name, spec),) = stage.items()
        fn = STAGES.get(name)
        if fn is None:
            raise MongoError(40324, f"Unrecognized pipeline stage name: '{name}'")
        if name in _LAST_ONLY and i != len(pipeline) - 1:
            raise MongoError(40601, f"{name} can only be the final stage in the pipeline")
        parsed.append((fn, spec, name))
    return parsed


def run_pipeline(
    docs: Iterable[Mapping[str, Any]],
    pipeline: Sequence[Mapping[str, Any]],
    ctx: PipelineContext | None,
) -> list[dict[str, Any]]:
    stream: Docs = (d if isinstance(d, dict) else dict(d) for d in docs)
    for fn, spec, _name in _parse(pipeline):
        stream = fn(stream, spec, ctx)
    return list(stream)


def transform_document(
    doc: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Apply pipeline-style update stages to one document."""
    allowed = {"$set", "$addFields", "$unset", "$project", "$replaceRoot", "$replaceWith"}
    for stage in stages:
        name = next(iter(stage), "")
        if name not in allowed:
            raise MongoError(72, f"Invalid stage in update pipeline: {name}")
    [out] = run_pipeline([dict(doc)], stages, None)
    return out

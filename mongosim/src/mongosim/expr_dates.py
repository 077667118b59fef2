"""Date expression operators: $year ... $millisecond, $dateToString, $dateAdd, $dateDiff.

Their arguments are expressions, so each operator is given the evaluator
(:func:`date_operators`): :mod:`.expressions` builds its table with its own ``evaluate``,
and this module does not import it back.
"""

from __future__ import annotations

import datetime as _dt
import functools
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from bson.int64 import Int64

from .bsonutil import MISSING
from .errors import MongoError

Vars = Mapping[str, Any]
OpFn = Callable[[Any, Mapping[str, Any], Vars], Any]
Evaluate = Callable[[Any, Mapping[str, Any], Vars], Any]


def _zone(name: Any) -> _dt.tzinfo:
    if name is None:
        return _dt.UTC
    text = str(name)
    if text[:1] in "+-":
        sign = -1 if text[0] == "-" else 1
        digits = text[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        return _dt.timezone(sign * _dt.timedelta(hours=hours, minutes=minutes))
    return ZoneInfo(text)


def _date_arg(
    evaluate: Evaluate, arg: Any, doc: Mapping[str, Any], v: Vars
) -> tuple[Any, _dt.tzinfo]:
    if isinstance(arg, Mapping) and "date" in arg:
        date = evaluate(arg["date"], doc, v)
        tz = _zone(evaluate(arg["timezone"], doc, v) if "timezone" in arg else None)
    else:
        date = evaluate(arg[0] if isinstance(arg, list) else arg, doc, v)
        tz = _dt.UTC
    if date is None or date is MISSING:
        return None, tz
    if not isinstance(date, _dt.datetime):
        raise MongoError(16006, f"can't convert from BSON type {type(date).__name__} to Date")
    if date.tzinfo is None:
        date = date.replace(tzinfo=_dt.UTC)
    return date.astimezone(tz), tz


def _part(
    fn: Callable[[_dt.datetime], int], evaluate: Evaluate, arg: Any, doc: Mapping[str, Any], v: Vars
) -> Any:
    date, _ = _date_arg(evaluate, arg, doc, v)
    return None if date is None else fn(date)


# MongoDB's %-specifiers (manual: "$dateToString") mapped to Python.
_FORMATS: dict[str, Callable[[_dt.datetime], str]] = {
    "Y": lambda d: f"{d.year:04d}",
    "m": lambda d: f"{d.month:02d}",
    "d": lambda d: f"{d.day:02d}",
    "H": lambda d: f"{d.hour:02d}",
    "M": lambda d: f"{d.minute:02d}",
    "S": lambda d: f"{d.second:02d}",
    "L": lambda d: f"{d.microsecond // 1000:03d}",
    "j": lambda d: f"{d.timetuple().tm_yday:03d}",
    "w": lambda d: str(d.isoweekday() % 7 + 1),
    "u": lambda d: str(d.isoweekday()),
    "U": lambda d: d.strftime("%U"),
    "V": lambda d: f"{d.isocalendar()[1]:02d}",
    "G": lambda d: f"{d.isocalendar()[0]:04d}",
    "%": lambda d: "%",
    "z": lambda d: d.strftime("%z"),
    "Z": lambda d: str(int((d.utcoffset() or _dt.timedelta()).total_seconds() // 60)),
    "b": lambda d: d.strftime("%b"),
    "B": lambda d: d.strftime("%B"),
}


def _date_to_string(evaluate: Evaluate, arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    date, _ = _date_arg(evaluate, arg, doc, v)
    if date is None:
        return evaluate(arg.get("onNull"), doc, v) if "onNull" in arg else None
    fmt = arg.get("format", "%Y-%m-%dT%H:%M:%S.%LZ")
    out, i = [], 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            spec = _FORMATS.get(fmt[i + 1])
            if spec is None:
                raise MongoError(
                    18536, f"Invalid format character '%{fmt[i + 1]}' in format string"
                )
            out.append(spec(date))
            i += 2
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


_UNITS = {
    "millisecond": 0.001,
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "week": 604800,
}


def _date_add(sign: int, evaluate: Evaluate, arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    start = evaluate(arg["startDate"], doc, v)
    unit, amount = evaluate(arg["unit"], doc, v), evaluate(arg["amount"], doc, v)
    if start is None or amount is None:
        return None
    if unit in ("month", "quarter", "year"):
        months = int(amount) * {"month": 1, "quarter": 3, "year": 12}[unit] * sign
        y, m = divmod(start.month - 1 + months, 12)
        return start.replace(year=start.year + y, month=m + 1)
    return start + sign * _dt.timedelta(seconds=_UNITS[unit] * float(amount))


def _date_diff(evaluate: Evaluate, arg: Any, doc: Mapping[str, Any], v: Vars) -> Any:
    start, end = evaluate(arg["startDate"], doc, v), evaluate(arg["endDate"], doc, v)
    unit = evaluate(arg["unit"], doc, v)
    if start is None or end is None:
        return None
    if unit in ("month", "quarter", "year"):
        months = (end.year - start.year) * 12 + end.month - start.month
        return Int64(months // {"month": 1, "quarter": 3, "year": 12}[unit])
    return Int64(int((end - start).total_seconds() // _UNITS[unit]))


def _iso_week(d: _dt.datetime) -> int:
    return d.isocalendar()[1]


_PARTS: dict[str, Callable[[_dt.datetime], int]] = {
    "$year": lambda d: d.year,
    "$month": lambda d: d.month,
    "$dayOfMonth": lambda d: d.day,
    "$hour": lambda d: d.hour,
    "$minute": lambda d: d.minute,
    "$second": lambda d: d.second,
    "$millisecond": lambda d: d.microsecond // 1000,
    "$dayOfWeek": lambda d: d.isoweekday() % 7 + 1,
    "$dayOfYear": lambda d: d.timetuple().tm_yday,
    "$week": lambda d: int(d.strftime("%U")),
    "$isoWeek": _iso_week,
    "$isoWeekYear": lambda d: d.isocalendar()[0],
    "$isoDayOfWeek": lambda d: d.isoweekday(),
}


def date_operators(evaluate: Evaluate) -> dict[str, OpFn]:
    """The date operators, each evaluating its arguments with ``evaluate``."""
    ops: dict[str, OpFn] = {
        name: functools.partial(_part, part, evaluate) for name, part in _PARTS.items()
    }
    ops["$dateToString"] = functools.partial(_date_to_string, evaluate)
    ops["$dateAdd"] = functools.partial(_date_add, 1, evaluate)
    ops["$dateSubtract"] = functools.partial(_date_add, -1, evaluate)
    ops["$dateDiff"] = functools.partial(_date_diff, evaluate)
    return ops

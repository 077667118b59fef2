"""next_state: how one change moves a source document's recorded state."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from bson import Timestamp

from streamer.core.changes import Change, UpdateDescription
from streamer.core.mirror import UnknownPriorState, next_state, same_state

WALL = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


def change(op: str, full: dict[str, Any] | None = None, **update: Any) -> Change:
    desc = UpdateDescription(**update) if op == "update" else None
    return Change(op, "k", Timestamp(1, 1), WALL, full=full, update=desc)  # type: ignore[arg-type]


PRIOR: dict[str, Any] = {
    "status": "pending",
    "address": {"city": "Oslo", "geo": {"lat": 59.9}},
    "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}],
    "tags": ["x", "y", "z"],
    "note": "fragile",
}


@pytest.mark.parametrize("prior", [None, PRIOR], ids=["unseen", "seen"])
@pytest.mark.parametrize("op", ["insert", "replace"])
def test_insert_and_replace_take_the_full_document(op: str, prior: dict[str, Any] | None) -> None:
    """The new state is the event's document, whatever came before (not copied: states
    are never changed in place, an update copies what it changes)."""
    full = {"status": "completed", "items": [{"sku": "a"}]}
    state = next_state(copy.deepcopy(prior), change(op, full))
    assert state == full


@pytest.mark.parametrize("prior", [None, PRIOR], ids=["unseen", "seen"])
def test_delete_ends_the_state(prior: dict[str, Any] | None) -> None:
    """After a delete there is no state."""
    assert next_state(prior, change("delete")) is None


def test_update_without_a_prior_state_raises() -> None:
    """An update to a document never seen cannot be applied."""
    with pytest.raises(UnknownPriorState):
        next_state(None, change("update", updated={"status": "completed"}))


def _expect(**overrides: Any) -> dict[str, Any]:
    out = copy.deepcopy(PRIOR)
    out.update(overrides)
    return out


UPDATES = [
    pytest.param(
        {"updated": {"status": "completed"}},
        _expect(status="completed"),
        id="set-top-level",
    ),
    pytest.param(
        {"updated": {"address.city": "Bergen"}},
        _expect(address={"city": "Bergen", "geo": {"lat": 59.9}}),
        id="set-embedded",
    ),
    pytest.param(
        {"updated": {"address.geo.lon": 10.7}},
        _expect(address={"city": "Oslo", "geo": {"lat": 59.9, "lon": 10.7}}),
        id="set-deeply-embedded",
    ),
    pytest.param(
        {"updated": {"billing.zip": "0150"}},
        _expect(billing={"zip": "0150"}),
        id="set-creates-embedded",
    ),
    pytest.param(
        {"updated": {"items.1.qty": 5}},
        _expect(items=[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 5}, {"sku": "c", "qty": 3}]),
        id="set-field-of-array-element",
    ),
    pytest.param(
        {"updated": {"tags.0": "w"}},
        _expect(tags=["w", "y", "z"]),
        id="set-array-element",
    ),
    pytest.param(
        {"updated": {"tags.4": "v"}},
        _expect(tags=["x", "y", "z", None, "v"]),
        id="set-past-the-end-pads-with-null",
    ),
    pytest.param(
        {"removed": ("note",)},
        {k: v for k, v in PRIOR.items() if k != "note"},
        id="unset-top-level",
    ),
    pytest.param(
        {"removed": ("address.geo",)},
        _expect(address={"city": "Oslo"}),
        id="unset-embedded",
    ),
    pytest.param(
        {"removed": ("tags.1",)},
        _expect(tags=["x", None, "z"]),
        id="unset-array-element-leaves-null",
    ),
    pytest.param(
        {"removed": ("missing", "address.nowhere.deep")},
        _expect(),
        id="unset-missing-is-a-no-op",
    ),
    pytest.param(
        {"truncated": (("items", 1),)},
        _expect(items=[{"sku": "a", "qty": 1}]),
        id="truncate",
    ),
    pytest.param(
        {"truncated": (("tags", 2),), "updated": {"tags.1": "q"}},
        _expect(tags=["x", "q"]),
        id="truncate-then-set-in-the-shorter-array",
    ),
    pytest.param(
        {"truncated": (("tags", 0),), "updated": {"tags.0": "only"}},
        _expect(tags=["only"]),
        id="truncate-to-empty-then-set",
    ),
    pytest.param(
        {
            "updated": {"status": "completed", "items.0.qty": 9},
            "removed": ("note",),
            "truncated": (("items", 2),),
        },
        {
            **{k: v for k, v in _expect().items() if k != "note"},
            "status": "completed",
            "items": [{"sku": "a", "qty": 9}, {"sku": "b", "qty": 2}],
        },
        id="all-three-at-once",
    ),
]


@pytest.mark.parametrize(("update", "expected"), UPDATES)
def test_update_applies_its_description_to_the_prior_state(
    update: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Truncations, removals and sets are applied with MongoDB's $set/$unset semantics."""
    assert next_state(copy.deepcopy(PRIOR), change("update", **update)) == expected


@pytest.mark.parametrize(("update", "expected"), UPDATES)
def test_update_never_mutates_the_prior_state(
    update: dict[str, Any], expected: dict[str, Any]
) -> None:
    """The prior (a stored mirror state) is left exactly as it was."""
    prior = copy.deepcopy(PRIOR)
    next_state(prior, change("update", **update))
    assert prior == PRIOR


@pytest.mark.parametrize(
    "second",
    [
        {"updated": {"address.geo.lat": 2.0}},
        {"removed": ["address.geo.lat"]},
        {"updated": {"items.0.qty": 9}},
        {"truncated": [("items", 1)]},
    ],
)
def test_a_later_update_changes_neither_earlier_states_nor_events(second: dict[str, Any]) -> None:
    """States share unchanged values; a nested change copies the value it changes first."""
    value = {"lat": 1.0}
    items = [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]
    first = change("update", updated={"address.geo": value, "items": items})
    state1 = next_state(copy.deepcopy(PRIOR), first)
    assert state1 is not None
    kept = copy.deepcopy(state1)
    next_state(state1, change("update", **second))
    assert state1 == kept
    assert value == {"lat": 1.0} and items == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]


def test_empty_update_returns_an_equal_copy() -> None:
    """An update whose description was projected away keeps the state (as a new dict)."""
    prior = copy.deepcopy(PRIOR)
    state = next_state(prior, change("update"))
    assert state == PRIOR and state is not prior


def test_truncating_an_array_nested_in_an_array() -> None:
    """truncatedArrays may name an element of an array ("m.0"); it is truncated too."""
    prior = {"m": [[1, 2, 3], [4]]}
    state = next_state(prior, change("update", truncated=(("m.0", 1),)))
    assert state == {"m": [[1], [4]]}


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"amount": 1, "status": "x"}, {"amount": 1, "status": "x"}, True),
        ({"amount": 1}, {"amount": True}, False),
        ({"amount": 1}, {"amount": 1.0}, False),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}, False),
        ({"v": float("nan")}, {"v": float("nan")}, True),
        ({"v": [1, {"x": 2}]}, {"v": [1, {"x": 2}]}, True),
        ({"v": [1, {"x": 2}]}, {"v": [1, {"x": 2.0}]}, False),
        ({"v": [1]}, {"v": [1, 2]}, False),
    ],
)
def test_same_state_compares_as_bson_does(a: Any, b: Any, same: bool) -> None:
    """A mirror write is skipped only for a state that is the same BSON value."""
    assert same_state(a, b) is same

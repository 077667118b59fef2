"""A transaction's versions of a collection and the unique keys they hold (storage)."""

from __future__ import annotations

from mongosim.bsonutil import canonical
from mongosim.matching import compile_filter
from mongosim.storage import Index, TxnVersions


def _open_alert_index() -> Index:
    spec = {"v": 2, "key": {"p": 1}, "name": "p_1", "unique": True}
    return Index(spec, compile_filter({"state": "open"}))


def test_holders_follow_every_version_set_after_the_first_look() -> None:
    index = _open_alert_index()
    versions = TxnVersions()
    versions[1] = {"_id": 1, "p": 9, "state": "open"}
    assert index.conflict(2, {"_id": 2, "p": 9, "state": "open"}, versions) == (9,)
    versions[1] = {"_id": 1, "p": 9, "state": "resolved"}  # out of the partial index
    assert index.conflict(2, {"_id": 2, "p": 9, "state": "open"}, versions) is None
    versions[2] = {"_id": 2, "p": 9, "state": "open"}
    versions[2] = {"_id": 2, "p": 10, "state": "open"}  # its key moved
    assert index.conflict(3, {"_id": 3, "p": 9, "state": "open"}, versions) is None
    assert index.conflict(3, {"_id": 3, "p": 10, "state": "open"}, versions) == (10,)
    versions[2] = None  # deleted
    assert index.conflict(3, {"_id": 3, "p": 10, "state": "open"}, versions) is None
    # A document's own version never conflicts with itself.
    versions[4] = {"_id": 4, "p": 11, "state": "open"}
    assert index.conflict(4, {"_id": 4, "p": 11, "state": "open"}, versions) is None
    assert versions.holders(index) == {(canonical(11),): {4}}


def test_a_committed_holder_the_transaction_changed_no_longer_holds_the_key() -> None:
    index = _open_alert_index()
    index.add(1, {"_id": 1, "p": 9, "state": "open"})
    versions = TxnVersions()
    assert index.conflict(2, {"_id": 2, "p": 9, "state": "open"}, versions) == (9,)
    versions[1] = {"_id": 1, "p": 9, "state": "resolved"}
    assert index.conflict(2, {"_id": 2, "p": 9, "state": "open"}, versions) is None

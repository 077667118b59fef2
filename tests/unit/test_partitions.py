"""Partitions: their ids and filters, and the assignment every instance computes alike."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.core.partitions import (
    Balance,
    Partition,
    and_filters,
    fair_bounds,
    parse_key,
    partitions_of,
    plan_balance,
    split_refusal,
)


def test_an_unsplit_stream_keeps_its_name_as_its_id() -> None:
    assert Partition("orders").key == "orders"
    assert Partition("orders", 0, 1).change_stage() is None
    assert Partition("orders").source_filter() == {}
    assert Partition("orders").mirror_filter() == {}


def test_a_partition_id_names_its_index_and_count_and_parses_back() -> None:
    for p in partitions_of("orders", 8):
        assert parse_key(p.key) == p
    assert Partition("orders", 3, 8).key == "orders#3/8"
    assert parse_key("inventory") == Partition("inventory")


def test_the_change_filter_hashes_the_document_key_and_lets_keyless_events_through() -> None:
    stage = Partition("orders", 2, 4).change_stage()
    assert stage == {
        "$match": {
            "$or": [
                {"documentKey": {"$exists": False}},
                {
                    "$expr": {
                        "$eq": [
                            {"$mod": [{"$abs": {"$toHashedIndexKey": "$documentKey._id"}}, 4]},
                            2,
                        ]
                    }
                },
            ]
        }
    }


def test_filters_combine_and_empty_ones_drop_out() -> None:
    assert and_filters({}, {}) == {}
    assert and_filters({"a": 1}, {}) == {"a": 1}
    assert and_filters({"a": 1}, {"p": 2}) == {"$and": [{"a": 1}, {"p": 2}]}


def test_fair_bounds_are_floor_and_ceiling_of_the_share() -> None:
    assert fair_bounds(8, 3) == (2, 3)
    assert fair_bounds(4, 3) == (1, 2)
    assert fair_bounds(1, 2) == (0, 1)
    assert fair_bounds(4, 0) == (4, 4)


def test_a_lone_instance_takes_every_partition() -> None:
    assert plan_balance("a", ["a"], {}, 8) == Balance(may_take=8)


def test_an_unsplit_stream_has_one_owner_and_standbys() -> None:
    assert plan_balance("b", ["a", "b"], {"a": [0]}, 1) == Balance()


def test_a_new_instance_makes_the_fullest_hand_one_over() -> None:
    held = {"a": [0, 1], "b": [2, 3]}
    # c joined: floor 1, ceiling 2; one partition is missing and nothing is free, so
    # the fullest (ties by name) hands one over, and only it.
    assert plan_balance("a", ["a", "b", "c"], held, 4) == Balance(release=(1,))
    assert plan_balance("b", ["a", "b", "c"], held, 4) == Balance()
    assert plan_balance("c", ["a", "b", "c"], held, 4) == Balance()


def test_a_partition_handed_over_goes_to_the_instance_lacking_one_not_back() -> None:
    held = {"a": [0], "b": [2, 3]}
    assert plan_balance("a", ["a", "b", "c"], held, 4) == Balance()
    assert plan_balance("c", ["a", "b", "c"], held, 4) == Balance(may_take=1)


def test_an_instance_above_the_ceiling_hands_the_extra_over() -> None:
    held = {"a": [0, 1, 2, 3, 4, 5, 6, 7]}
    assert plan_balance("a", ["a", "b"], held, 8) == Balance(release=(4, 5, 6, 7))


def test_partitions_of_a_dead_holder_are_not_free_until_its_leases_expire() -> None:
    # "z" is no longer a member (no heartbeat), but its leases still live.
    held = {"a": [0], "b": [1], "z": [2, 3]}
    assert plan_balance("a", ["a", "b"], held, 4).may_take == 0


def settle(members: list[str], held: dict[str, list[int]], count: int, seed: int) -> int:
    """Let every member act in turn (random order) until nobody moves; the rounds."""
    rng = random.Random(seed)
    for rounds in range(1, 50):
        moved = False
        for me in rng.sample(members, len(members)):
            plan = plan_balance(me, members, held, count)
            for i in plan.release:
                held[me].remove(i)
                moved = True
            taken = {i for ids in held.values() for i in ids}
            free = [i for i in range(count) if i not in taken]
            rng.shuffle(free)
            for i in free[: plan.may_take]:
                held.setdefault(me, []).append(i)
                moved = True
        if not moved:
            return rounds
    raise AssertionError(f"no settled split after 50 rounds: {held}")


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(1, 32),
    before=st.integers(1, 6),
    after=st.integers(1, 6),
    seed=st.integers(0, 10_000),
)
def test_any_change_of_members_settles_on_a_fair_split_with_each_partition_held_once(
    count: int, before: int, after: int, seed: int
) -> None:
    members = [f"m{i}" for i in range(before)]
    held: dict[str, list[int]] = {m: [] for m in members}
    settle(members, held, count, seed)
    # Some leave (their partitions come free), some join.
    now = [f"m{i}" for i in range(max(before, after) - after, max(before, after))]
    held = {m: ids for m, ids in held.items() if m in now}
    for m in now:
        held.setdefault(m, [])
    settle(now, held, count, seed + 1)
    all_held = sorted(i for ids in held.values() for i in ids)
    assert all_held == list(range(count))  # every partition held, none twice
    low, high = fair_bounds(count, len(now))
    assert all(low <= len(ids) <= high for ids in held.values()), held


@settings(max_examples=100, deadline=None)
@given(count=st.integers(1, 32), members=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_a_settled_split_is_sticky(count: int, members: int, seed: int) -> None:
    names = [f"m{i}" for i in range(members)]
    held: dict[str, list[int]] = {m: [] for m in names}
    settle(names, held, count, seed)
    for me in names:
        assert plan_balance(me, names, held, count) == Balance()


def test_a_split_stream_is_refused_before_7_0_in_one_line_naming_the_version() -> None:
    refusal = split_refusal({"orders": 4, "inventory": 1}, [6, 0, 14, 0], "6.0.14")
    assert refusal is not None and "\n" not in refusal
    assert refusal.startswith("orders: partitions is 4, but the server is MongoDB 6.0.14:")
    assert split_refusal({"orders": 4}, [7, 0, 2, 0], "7.0.2") is None
    assert split_refusal({"orders": 1, "inventory": 1}, [5, 0, 0, 0], "5.0.0") is None
    assert split_refusal({"orders": 2}, [], None) is not None  # unknown: not assumed new

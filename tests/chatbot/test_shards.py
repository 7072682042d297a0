"""The counters' layout: shard keys, shares that add up to the limit, layouts by day, packed user figures."""

from __future__ import annotations

from datetime import date

import pytest
from chatbot.shards import UNSHARDED, DayKeys, Layout, Layouts, home, pack, share, unpack


def test_shares_add_up_to_the_limit_and_differ_by_at_most_one() -> None:
    for limit, shards in [(1_000_000, 16), (1_000_003, 7), (5, 8), (0, 3)]:
        shares = [share(limit, shards, k) for k in range(shards)]
        assert sum(shares) == limit
        assert max(shares) - min(shares) <= 1


def test_a_layout_applies_from_its_day_and_days_before_the_first_entry_are_unsharded() -> None:
    layouts = Layouts.parse("2026-12-01:16/4, 2027-01-01:32/8")

    assert layouts.on(date(2026, 11, 30)) == UNSHARDED
    assert layouts.on(date(2026, 12, 1)) == Layout(16, 4)
    assert layouts.on(date(2026, 12, 31)) == Layout(16, 4)
    assert layouts.on(date(2027, 1, 1)) == Layout(32, 8)
    assert Layouts.parse("").on(date(2030, 1, 1)) == UNSHARDED


@pytest.mark.parametrize(
    "text",
    ["2026-12-01", "2026-12-01:0/4", "2026-12-01:16/4,2026-11-01:8/2", "2026-12-01:990/10", "tomorrow:4/4"],
)
def test_a_malformed_layout_is_refused_with_the_entry_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"'"):
        Layouts.parse(text)


def test_one_shard_keeps_the_first_ledgers_keys_and_more_shards_number_them() -> None:
    legacy = DayKeys("2026-12-01", UNSHARDED, "u1", "o1")
    sharded = DayKeys("2026-12-01", Layout(3, 2), "u1", "o1")

    assert list(legacy.all()) == ["user#u1", "org#o1", "global"]
    assert list(sharded.all()) == ["user#u1", "org#o1#0", "org#o1#1", "global#0", "global#1", "global#2"]
    assert sharded.org(sharded.home_org_shard) in sharded.shards("organization")


def test_a_users_home_shard_is_stable_and_users_spread_over_the_shards() -> None:
    homes = [home(f"user-{i}", 8) for i in range(800)]

    assert homes == [home(f"user-{i}", 8) for i in range(800)]
    assert all(60 <= homes.count(k) <= 140 for k in range(8))


def test_packed_figures_add_up_figure_by_figure_and_unpack() -> None:
    total = pack(5296, 1, 0) + pack(-4000, 0, 2) + pack(3000, 1, 1) + pack(-500, 0, 0)

    assert unpack(total) == (3796, 2, 3)
    assert unpack(pack(2**40 - 1, 2**20 - 1, 10**6)) == (2**40 - 1, 2**20 - 1, 10**6)

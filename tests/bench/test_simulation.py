"""The ledger's simulation (bench/simulation.py), small: its DynamoDB model applies the ledger's writes as
moto does, a run checks the guarantee after every write, and today's design meets the conflicts the
sharded one avoids."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from typing import Any

import pytest
from chatbot.errors import LimitExceeded
from chatbot.quota import QuotaLedger
from chatbot.shards import Layouts
from chatbot.usage import Usage

from bench import simulation
from bench.simulation import Model, Scenario, SimulatedDynamoDB, VirtualLoop, quiet
from tests.fakes.dynamodb import empty_dynamodb

LIMITS = {"user": 20_000, "organization": 60_000, "global": 100_000}


@pytest.fixture
def moto_table() -> Iterator[Any]:
    with empty_dynamodb() as client:
        yield client


async def _traffic(client: Any, clock: Any) -> None:
    """The same calls, refusals and retries included, against either store."""
    ledger = QuotaLedger(
        client,
        simulation.TABLE,
        LIMITS,
        clock=clock,
        layouts=Layouts.parse("2026-01-01:3/2"),
        rng=random.Random(5),
    )
    rng = random.Random(9)
    for i in range(12):
        previous = None
        try:
            for call in range(3):
                reservation = await ledger.reserve(
                    f"u{i % 4}",
                    f"o{i % 2}",
                    estimated_input=2000,
                    max_tokens=3000,
                    first=call == 0,
                    settle=previous,
                )
                previous = (
                    reservation,
                    Usage(rng.randint(500, 2000), rng.randint(0, reservation.max_tokens)),
                )
            await ledger.settle(*previous, tool_calls=i % 3)
        except LimitExceeded:  # the ledger recorded the settle it carried
            pass


def _comparable(items: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (i["pk"]["S"], i["sk"]["S"]): {
            k: v for k, v in i.items() if not k.startswith("~") and k != "updated_at"
        }
        for i in items
    }


def test_the_model_applies_the_ledgers_writes_exactly_as_moto_does(moto_table: Any) -> None:
    loop = VirtualLoop()
    store = SimulatedDynamoDB(Model(), random.Random(1))
    with quiet():
        loop.run_until_complete(_traffic(store, lambda: simulation.NOON))
        loop.close()
        asyncio.run(_traffic(moto_table, lambda: simulation.NOON))

    expected = _comparable(moto_table.scan(TableName=simulation.TABLE)["Items"])
    assert _comparable(list(store.items.values())) == expected
    assert any(pk.startswith("global#") for pk, _ in expected)


def test_a_small_run_keeps_every_tier_within_its_limit_and_finds_no_false_refusal() -> None:
    with quiet():
        sharded = simulation.run(Scenario("sharded", 25, 3, 4, 2))
        exhausted = simulation.run(
            Scenario("sharded", 25, 3, 4, 2, limits={"user": 10**9, "organization": 10**9, "global": 200_000})
        )

    assert sharded.chats > 50 and sharded.completed == sharded.chats
    assert sharded.false_refusals == sharded.unavailable == 0
    assert exhausted.true_refusals + exhausted.slack_refusals > 0 and exhausted.false_refusals == 0
    assert exhausted.peak_fill["global"] > 0.95
    assert not sharded.peak_over and not exhausted.peak_over


def test_todays_single_global_item_meets_transaction_conflicts_the_shards_do_not() -> None:
    with quiet():
        today = simulation.run(Scenario("today", 25, 3))
        sharded = simulation.run(Scenario("sharded", 25, 3, 4, 2))

    assert today.stats.conflicts > 0 and sharded.stats.conflicts == 0
    assert sharded.stats.write_units / sharded.chats < today.stats.write_units / today.chats

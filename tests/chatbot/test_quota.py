"""The daily token quotas: reservations, settles, refusals, concurrency and failures, against moto."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError
from chatbot.errors import LimitExceeded, Unavailable
from chatbot.quota import QuotaLedger, Reservation, resets_at, seconds_until_reset
from chatbot.room import MIN_USEFUL_OUTPUT
from chatbot.shards import Layouts, home, share, unpack
from chatbot.usage import Usage, estimate_input_tokens

from tests.fakes.dynamodb import USAGE_TABLE, empty_dynamodb

TABLE = USAGE_TABLE
NOON = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = {"user": 50_000, "organization": 1_000_000, "global": 1_000_000}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SerializedClient:
    """Makes each DynamoDB call atomic, as DynamoDB is and moto is not.

    moto applies a write by copying the item (and a transaction by copying the table) without a lock, which
    would lose writes made meanwhile by other threads. Serializing single calls keeps DynamoDB's per-call
    atomicity while leaving every interleaving *between* calls (reserve, read, retry, settle) to the
    concurrency under test.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()
        self.writes = 0

    def update_item(self, **kwargs: Any) -> Any:
        with self._lock:
            self.writes += 1
            return self._client.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        with self._lock:
            return self._client.batch_get_item(**kwargs)


class WatchedClient(SerializedClient):
    """Also records the highest `tokens` any item, and any tier summed over its shards, held after any write."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.peaks: dict[str, int] = {}
        self.latest: dict[str, int] = {}

    def update_item(self, **kwargs: Any) -> Any:
        with self._lock:
            self.writes += 1
            result = self._client.update_item(**kwargs)
            # Each write returns the item's new tokens (calls are serialized, so this is the latest).
            pk = kwargs["Key"]["pk"]["S"]
            if "tokens" not in result.get("Attributes", {}):  # moto leaves out an attribute ADD 0 kept
                result = self._client.get_item(TableName=TABLE, Key=kwargs["Key"], ConsistentRead=True)
                result = {"Attributes": result["Item"]}
            self.latest[pk] = int(result["Attributes"]["tokens"]["N"])
            self.peaks[pk] = max(self.peaks.get(pk, 0), self.latest[pk])
            tier = tier_of(pk)
            total = sum(tokens for key, tokens in self.latest.items() if tier_of(key) == tier)
            self.peaks[tier] = max(self.peaks.get(tier, 0), total)
            return result


def tier_of(pk: str) -> str:
    """The tier an item counts for: `user#<id>`, `org#<id>` (any shard) or `global` (any shard)."""
    parts = pk.split("#")
    return "#".join(parts[:2]) if parts[0] in ("user", "org") else "global"


class FlakyClient(SerializedClient):
    """Fails the next `failures` writes with `error` (then behaves), recording each write's key and marker
    condition. With `applied=True` the write is applied first and then fails: a reply lost on the way."""

    def __init__(
        self, client: Any, error: Exception, failures: int, *, applied: bool = False, only: str = ""
    ) -> None:
        super().__init__(client)
        self.error, self.failures, self.applied, self.only = error, failures, applied, only
        self._counting = threading.Lock()
        self.injected = 0
        self.calls: list[tuple[str, str]] = []

    def update_item(self, **kwargs: Any) -> Any:
        pk = kwargs["Key"]["pk"]["S"]
        with self._counting:  # writes run concurrently in threads: exactly `failures` of them fail
            self.calls.append((pk, kwargs["ConditionExpression"]))
            fail = self.failures > 0 and pk.startswith(self.only)
            if fail:
                self.failures -= 1
                self.injected += 1
        if fail:
            if self.applied:
                super().update_item(**kwargs)
            raise self.error
        return super().update_item(**kwargs)


def client_error(code: str, message: str = "", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, "TransactWriteItems")


def transaction_conflict() -> ClientError:
    reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}, {"Code": "None"}]
    return client_error(
        "TransactionCanceledException",
        "Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[TransactionConflict, None, None]",
        CancellationReasons=reasons,
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with empty_dynamodb() as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock(NOON)


def ledger(client: Any, clock: Clock, **limits: int) -> QuotaLedger:
    return QuotaLedger(client, TABLE, {**LIMITS, **limits}, clock=clock)


def item(client: Any, pk: str, day: str = "2025-06-01") -> dict[str, int | str]:
    found = client.get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": day}}, ConsistentRead=True)
    return {name: (int(v["N"]) if "N" in v else v["S"]) for name, v in found.get("Item", {}).items()}


def tokens(client: Any, pk: str, day: str = "2025-06-01") -> int:
    value = item(client, pk, day).get("tokens", 0)
    assert isinstance(value, int)
    return value


def ids() -> tuple[str, str]:
    return f"u-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------- arithmetic


async def test_reserve_holds_estimate_plus_max_tokens_on_all_three_tiers_and_counts_a_request(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock)
    reservation = await quotas.reserve(user, org, estimated_input=1200, max_tokens=4096, first=True)

    assert (reservation.user_id, reservation.org_id, reservation.day) == (user, org, "2025-06-01")
    assert (reservation.amount, reservation.max_tokens) == (1200 + 4096, 4096)
    assert [(h.tier, h.pk, h.amount) for h in reservation.holds] == [
        ("user", f"user#{user}", 5296),
        ("organization", f"org#{org}", 5296),
        ("global", "global", 5296),
    ]
    # The daily counters expire after a week; the organization's, which the usage report reads, after 100 days.
    expiry = {
        f"user#{user}": datetime(2025, 6, 8),
        f"org#{org}": datetime(2025, 9, 9),
        "global": datetime(2025, 6, 8),
    }
    for pk, expires in expiry.items():
        stored = item(dynamodb, pk)
        assert stored["tokens"] == 5296
        assert stored["requests"] == 1
        assert stored["expires_at"] == int(expires.replace(tzinfo=UTC).timestamp())
        assert stored["updated_at"] == NOON.isoformat()


async def test_settle_replaces_the_reservation_by_the_actual_counts(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock)
    reservation = await quotas.reserve(user, org, estimated_input=3000, max_tokens=4096, first=True)
    usage = Usage(
        input_tokens=900, output_tokens=300, cache_creation_input_tokens=1500, cache_read_input_tokens=200
    )

    await quotas.settle(reservation, usage)

    assert usage.counted == 2900
    for pk in (f"user#{user}", f"org#{org}", "global"):
        stored = item(dynamodb, pk)
        assert stored["tokens"] == 2900
        assert stored["input_tokens"] == 900
        assert stored["output_tokens"] == 300
        assert stored["cache_creation_input_tokens"] == 1500
        assert stored["cache_read_input_tokens"] == 200
        assert stored["requests"] == 1


async def test_a_multi_call_request_writes_once_per_call_and_stores_the_sum_of_its_usages(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    client = SerializedClient(dynamodb)
    quotas = ledger(client, clock)
    usages = [Usage(1000, 120, 0, 0), Usage(300, 80, 0, 1000), Usage(450, 500, 20, 1000)]

    previous: tuple[Reservation, Usage] | None = None
    for index, usage in enumerate(usages):
        reservation = await quotas.reserve(
            user, org, estimated_input=2500, max_tokens=4096, first=index == 0, settle=previous
        )
        previous = (reservation, usage)
    assert previous is not None
    await quotas.settle(*previous)

    # One conditional write per tier per model call, and one per tier to settle the last call.
    assert client.writes == 3 * (len(usages) + 1)
    for pk in (f"user#{user}", f"org#{org}", "global"):
        stored = item(dynamodb, pk)
        assert stored["tokens"] == sum(u.counted for u in usages)
        assert stored["input_tokens"] == 1750
        assert stored["output_tokens"] == 700
        assert stored["cache_creation_input_tokens"] == 20
        assert stored["cache_read_input_tokens"] == 2000
        assert stored["requests"] == 1


async def test_usage_above_its_reservation_is_recorded_anyway_with_a_warning(
    dynamodb: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock)
    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=300, first=True)

    with caplog.at_level(logging.WARNING, logger="chatbot.quota"):
        await quotas.settle(reservation, Usage(input_tokens=700, output_tokens=300))

    assert tokens(dynamodb, f"user#{user}") == 1000
    assert any("exceeds the reservation" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------- limits


async def test_request_is_refused_when_the_user_tier_is_spent_naming_tier_limit_and_used(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock, user=5000)
    reservation = await quotas.reserve(user, org, estimated_input=1000, max_tokens=4096, first=True)
    await quotas.settle(reservation, Usage(input_tokens=800, output_tokens=4000))

    with pytest.raises(LimitExceeded) as refused:
        await quotas.reserve(user, org, estimated_input=1000, max_tokens=4096, first=True)

    error = refused.value
    assert (error.tier, error.limit, error.used) == ("user", 5000, 4800)
    assert error.resets_at == "2025-06-02T00:00:00Z"
    assert error.retry_after == 12 * 3600
    assert error.headers() == {"Retry-After": str(12 * 3600)}
    assert item(dynamodb, f"user#{user}")["requests"] == 1


async def test_organization_tier_refuses_a_fresh_user_once_colleagues_spent_it(
    dynamodb: Any, clock: Clock
) -> None:
    _, org = ids()
    quotas = ledger(dynamodb, clock, organization=10_000)
    for colleague in ("a", "b"):
        colleague_id = f"{colleague}-{org}"
        reservation = await quotas.reserve(
            colleague_id, org, estimated_input=500, max_tokens=4000, first=True
        )
        await quotas.settle(reservation, Usage(input_tokens=500, output_tokens=4400))

    with pytest.raises(LimitExceeded) as refused:
        await quotas.reserve("newcomer" + org, org, estimated_input=500, max_tokens=4000, first=True)

    assert (refused.value.tier, refused.value.limit, refused.value.used) == ("organization", 10_000, 9800)
    assert tokens(dynamodb, f"user#newcomer{org}") == 0


async def test_max_tokens_is_lowered_to_what_is_left_near_the_limit(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock, user=10_000)
    spent = await quotas.reserve(user, org, estimated_input=1000, max_tokens=4096, first=True)
    await quotas.settle(spent, Usage(input_tokens=1000, output_tokens=6000))

    reservation = await quotas.reserve(user, org, estimated_input=1000, max_tokens=4096, first=True)

    assert reservation.max_tokens == 10_000 - 7000 - 1000
    assert reservation.amount == 3000
    assert tokens(dynamodb, f"user#{user}") == 10_000


async def test_a_call_needing_more_than_a_whole_days_limit_is_lowered_not_refused(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    reservation = await ledger(dynamodb, clock, user=3000).reserve(
        user, org, estimated_input=1000, max_tokens=4096, first=True
    )

    assert reservation.max_tokens == 2000
    assert tokens(dynamodb, f"user#{user}") == 3000


async def test_too_little_room_for_a_useful_answer_is_refused(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock, user=2000)
    spent = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    await quotas.settle(spent, Usage(input_tokens=100, output_tokens=1000 + 100 - MIN_USEFUL_OUTPUT))

    with pytest.raises(LimitExceeded):
        await quotas.reserve(user, org, estimated_input=801, max_tokens=4096, first=False)
    lowered = await quotas.reserve(user, org, estimated_input=800, max_tokens=4096, first=False)
    assert lowered.max_tokens == MIN_USEFUL_OUTPUT


async def test_a_refused_call_still_records_the_previous_calls_usage(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock, user=6000)
    first = await quotas.reserve(user, org, estimated_input=1000, max_tokens=4000, first=True)

    with pytest.raises(LimitExceeded) as refused:
        await quotas.reserve(
            user, org, estimated_input=2000, max_tokens=4000, first=False, settle=(first, Usage(1000, 3000))
        )

    assert refused.value.used == 4000
    stored = item(dynamodb, f"user#{user}")
    assert (stored["tokens"], stored["input_tokens"], stored["output_tokens"]) == (4000, 1000, 3000)


async def test_a_new_utc_day_is_a_fresh_quota_and_a_call_across_midnight_settles_on_its_own_day(
    dynamodb: Any,
) -> None:
    user, org = ids()
    clock = Clock(datetime(2025, 6, 1, 23, 59, 50, tzinfo=UTC))
    quotas = ledger(dynamodb, clock, user=5000)
    before = await quotas.reserve(user, org, estimated_input=500, max_tokens=4500, first=True)
    with pytest.raises(LimitExceeded) as refused:
        await quotas.reserve(user, org, estimated_input=500, max_tokens=4500, first=False)
    assert refused.value.retry_after == 10

    clock.now += timedelta(seconds=15)
    after = await quotas.reserve(
        user, org, estimated_input=500, max_tokens=4500, first=False, settle=(before, Usage(400, 100))
    )

    assert after.day == "2025-06-02" and after.max_tokens == 4500
    assert tokens(dynamodb, f"user#{user}", "2025-06-01") == 500
    assert tokens(dynamodb, f"user#{user}", "2025-06-02") == 5000
    report = await quotas.report(user, org)
    assert report["date"] == "2025-06-02" and report["resets_at"] == "2025-06-03T00:00:00Z"


# ------------------------------------------------------------------------- concurrency and crashes


async def three_calls(
    quotas: QuotaLedger, user: str, org: str, rng: random.Random, settled: Callable[[Usage], None]
) -> LimitExceeded | None:
    """One request of three model calls racing the others, each reservation settling the call before it.
    `settled` hears each call's usage once the ledger has recorded it (a refusal records the pending settle
    first). Returns the refusal, if the request met one."""
    previous: tuple[Reservation, Usage] | None = None
    try:
        for call in range(3):
            reservation = await quotas.reserve(
                user, org, estimated_input=800, max_tokens=1500, first=call == 0, settle=previous
            )
            if previous is not None:
                settled(previous[1])
            await asyncio.sleep(0)
            previous = (reservation, Usage(rng.randint(200, 800), rng.randint(0, reservation.max_tokens)))
        assert previous is not None
        await quotas.settle(*previous)
        settled(previous[1])
    except LimitExceeded as refused:
        if previous is not None:
            settled(previous[1])
        return refused
    return None


async def test_dozens_of_concurrent_requests_in_one_organization_never_push_a_tier_over_and_totals_match(
    dynamodb: Any, clock: Clock
) -> None:
    _, org = ids()
    client = WatchedClient(dynamodb)
    limits = {"user": 20_000, "organization": 100_000, "global": 150_000}
    quotas = QuotaLedger(client, TABLE, limits, clock=clock)
    rng = random.Random(7)
    recorded: list[Usage] = []

    users = [f"user-{i}-{org}" for i in range(40)]
    outcomes = await asyncio.gather(*(three_calls(quotas, user, org, rng, recorded.append) for user in users))
    refusals = [refused for refused in outcomes if refused is not None]

    assert refusals and all(r.tier == "organization" for r in refusals)
    assert len(recorded) > 40
    total = sum(u.counted for u in recorded)
    assert tokens(dynamodb, f"org#{org}") == total
    assert tokens(dynamodb, "global") == total
    assert sum(tokens(dynamodb, f"user#{user}") for user in users) == total
    assert client.peaks[f"org#{org}"] <= limits["organization"]
    assert client.peaks["global"] <= limits["global"]
    user_peaks = [peak for pk, peak in client.peaks.items() if pk.startswith("user#")]
    assert user_peaks and max(user_peaks) <= limits["user"]
    # The organization was really contended: it came close to its limit at some moment.
    assert client.peaks[f"org#{org}"] > limits["organization"] - 2300


async def test_a_crash_between_reserve_and_settle_over_counts_and_never_under_counts(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock)
    crashed = await quotas.reserve(user, org, estimated_input=1000, max_tokens=2000, first=True)
    # The process dies here: the call used some tokens, its settle never runs.
    actual_use_of_the_lost_call = Usage(input_tokens=900, output_tokens=1200)

    restarted = ledger(dynamodb, clock)
    later = await restarted.reserve(user, org, estimated_input=500, max_tokens=1000, first=True)
    await restarted.settle(later, Usage(400, 200))

    assert tokens(dynamodb, f"user#{user}") == crashed.amount + 600
    assert tokens(dynamodb, f"user#{user}") > actual_use_of_the_lost_call.counted + 600


# ------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException", "slow down"),
        client_error("ThrottlingException", "slow down"),
        transaction_conflict(),
    ],
    ids=["provisioned-throughput", "throttling", "transaction-conflict"],
)
async def test_throttling_and_transaction_conflicts_are_retried(
    dynamodb: Any, clock: Clock, error: ClientError
) -> None:
    user, org = ids()
    client = FlakyClient(dynamodb, error, failures=3)
    quotas = ledger(client, clock)

    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    client.failures = 2
    await quotas.settle(reservation, Usage(100, 50))

    assert tokens(dynamodb, f"user#{user}") == 150
    assert item(dynamodb, "global")["requests"] == 1
    # Three writes to reserve and three to settle, plus one attempt per failure.
    assert client.injected >= 4
    assert len(client.calls) == 3 + 3 + client.injected


async def test_a_persistently_failing_settle_raises_unavailable_loudly_and_keeps_the_reservation(
    dynamodb: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    user, org = ids()
    client = FlakyClient(dynamodb, client_error("ThrottlingException", "slow down"), failures=0)
    quotas = ledger(client, clock)
    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    client.failures = 1000

    with caplog.at_level(logging.ERROR, logger="chatbot.quota"), pytest.raises(Unavailable):
        await quotas.settle(reservation, Usage(100, 50))

    assert any("SETTLE LOST" in r.getMessage() and f"user#{user}" in r.getMessage() for r in caplog.records)
    assert tokens(dynamodb, f"user#{user}") == reservation.amount


@pytest.mark.parametrize(
    "error",
    [ReadTimeoutError(endpoint_url="http://dynamodb"), client_error("InternalServerError", "try again")],
    ids=["read-timeout", "internal-server-error"],
)
async def test_writes_applied_whose_replies_were_lost_are_retried_and_counted_once_per_item(
    dynamodb: Any, clock: Clock, error: Exception
) -> None:
    user, org = ids()
    client = FlakyClient(dynamodb, error, failures=3, applied=True)
    quotas = ledger(client, clock)
    first = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    client.failures = 3
    second = await quotas.reserve(
        user, org, estimated_input=100, max_tokens=1000, first=False, settle=(first, Usage(100, 50))
    )
    client.failures = 3

    await quotas.settle(second, Usage(200, 100))

    # Every write was applied, its reply lost, and sent again: the marker made each repeat a no-op.
    for pk in (f"user#{user}", f"org#{org}", "global"):
        stored = item(dynamodb, pk)
        assert (stored["tokens"], stored["requests"]) == (450, 1), pk
        assert (stored["input_tokens"], stored["output_tokens"]) == (300, 150), pk
        assert not [name for name in stored if name.startswith("~")], "the request's marker is gone"
    # Each lost reply cost one more attempt, nothing else (a write may take two of an operation's failures,
    # leaving one unused when the test sets the next operation's).
    assert client.injected >= 7
    assert len(client.calls) == 3 * 3 + client.injected


async def test_a_settle_sent_again_after_it_failed_applies_only_what_was_not_applied(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    client = FlakyClient(dynamodb, client_error("ThrottlingException", "slow down"), failures=0, only="org#")
    quotas = ledger(client, clock)
    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    client.failures = 10  # the organization's settle gives up; the other two are applied

    with pytest.raises(Unavailable):
        await quotas.settle(reservation, Usage(100, 50))
    await quotas.settle(reservation, Usage(100, 50))

    for pk in (f"user#{user}", f"org#{org}", "global"):
        assert tokens(dynamodb, pk) == 150, pk


async def test_a_settle_is_finished_even_when_the_request_is_cancelled(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    client = FlakyClient(dynamodb, client_error("ThrottlingException", "slow down"), failures=0)
    quotas = ledger(client, clock)
    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    client.failures = 3

    with anyio.CancelScope() as scope:
        scope.cancel()
        await quotas.settle(reservation, Usage(100, 50))

    assert tokens(dynamodb, f"user#{user}") == 150


async def test_an_unreachable_store_makes_reserve_and_report_unavailable(clock: Clock) -> None:
    unreachable = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=1, retries={"total_max_attempts": 1}),
    )
    quotas = ledger(unreachable, clock)

    with pytest.raises(Unavailable):
        await quotas.reserve("u", "o", estimated_input=100, max_tokens=1000, first=True)
    with pytest.raises(Unavailable):
        await quotas.report("u", "o")


async def test_a_missing_table_makes_the_quota_unavailable(dynamodb: Any, clock: Clock) -> None:
    quotas = QuotaLedger(dynamodb, "NoSuchTable", LIMITS, clock=clock)

    with pytest.raises(Unavailable):
        await quotas.reserve("u", "o", estimated_input=100, max_tokens=1000, first=True)


# ------------------------------------------------------------------------- report and helpers


async def test_report_gives_todays_usage_per_tier_with_limits(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = ledger(dynamodb, clock)
    reservation = await quotas.reserve(user, org, estimated_input=100, max_tokens=1000, first=True)
    await quotas.settle(reservation, Usage(300, 200))
    other = await quotas.reserve("other" + user, org, estimated_input=100, max_tokens=1000, first=True)
    await quotas.settle(other, Usage(100, 100))

    assert await quotas.report(user, org) == {
        "date": "2025-06-01",
        "resets_at": "2025-06-02T00:00:00Z",
        "tiers": {
            "user": {"used": 500, "limit": 50_000},
            "organization": {"used": 700, "limit": 1_000_000},
            "global": {"used": 700, "limit": 1_000_000},
        },
    }


async def test_report_of_a_user_without_usage_today_is_zero(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()

    report = await ledger(dynamodb, clock).report(user, org)

    assert {tier: value["used"] for tier, value in report["tiers"].items()} == {
        "user": 0,
        "organization": 0,
        "global": 0,
    }


def test_input_estimate_is_at_least_the_utf8_size_of_every_prompt_text() -> None:
    text = "Übersetze bitte: 日本語のテキスト 🙂 " * 50
    payload = {
        "model": "claude-haiku-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "You help Alice."}],
        "messages": [{"role": "user", "content": text}],
    }

    estimate = estimate_input_tokens(payload)

    assert estimate >= len(text.encode("utf-8")) + len("You help Alice.")
    assert estimate < len(text.encode("utf-8")) * 2


def test_input_estimate_adds_room_for_the_tool_use_system_prompt() -> None:
    messages = [{"role": "user", "content": "who are the admins?"}]
    tool = {"name": "member_list", "description": "List members.", "input_schema": {"type": "object"}}

    without = estimate_input_tokens({"messages": messages})
    with_tools = estimate_input_tokens({"messages": messages, "tools": [tool]})

    assert with_tools - without >= 346 + len(str(tool))


def test_reset_is_at_the_next_utc_midnight() -> None:
    assert resets_at(NOON) == "2025-06-02T00:00:00Z"
    assert seconds_until_reset(NOON) == 43_200
    assert seconds_until_reset(datetime(2025, 6, 1, 23, 59, 59, 500_000, tzinfo=UTC)) == 1
    assert seconds_until_reset(datetime(2025, 6, 2, tzinfo=UTC)) == 86_400
    half_past_one_in_paris_summer = datetime(2025, 6, 2, 1, 30, tzinfo=timezone(timedelta(hours=2)))
    assert resets_at(half_past_one_in_paris_summer) == "2025-06-02T00:00:00Z"


# ------------------------------------------------------------------------- shards

SHARDED = Layouts.parse("2025-06-01:4/3")


def sharded(client: Any, clock: Clock, seed: int = 1, **limits: int) -> QuotaLedger:
    return QuotaLedger(
        client, TABLE, {**LIMITS, **limits}, clock=clock, layouts=SHARDED, rng=random.Random(seed)
    )


def tier_total(client: Any, prefix: str, day: str = "2025-06-01") -> int:
    items = client.scan(TableName=TABLE)["Items"]
    return sum(
        int(i.get("tokens", {}).get("N", "0"))
        for i in items
        if i["sk"]["S"] == day and (i["pk"]["S"] == prefix or i["pk"]["S"].startswith(prefix + "#"))
    )


async def test_many_users_of_one_organization_and_many_organizations_never_take_a_sharded_tier_over(
    dynamodb: Any, clock: Clock
) -> None:
    client = WatchedClient(dynamodb)
    limits = {"user": 20_000, "organization": 60_000, "global": 150_000}
    quotas = QuotaLedger(client, TABLE, limits, clock=clock, layouts=SHARDED, rng=random.Random(3))
    rng = random.Random(11)
    recorded: dict[str, int] = defaultdict(int)
    orgs = ["big"] + [f"small{i}" for i in range(6)]

    def record(org: str) -> Callable[[Usage], None]:
        def add(usage: Usage) -> None:
            recorded[org] += usage.counted

        return add

    requests = [(f"u{i}-big", "big") for i in range(30)] + [
        (f"u{i}-{org}", org) for org in orgs[1:] for i in range(6)
    ]
    outcomes = await asyncio.gather(
        *(three_calls(quotas, user, org, rng, record(org)) for user, org in requests)
    )
    refusals = [refused for refused in outcomes if refused is not None]

    assert refusals, "the race should reach a tier's limit"
    for org in orgs:
        assert tier_total(dynamodb, f"org#{org}") == recorded.get(org, 0)
        assert client.peaks.get(f"org#{org}", 0) <= limits["organization"]
    assert tier_total(dynamodb, "global") == sum(recorded.values())
    assert client.peaks["global"] <= limits["global"]
    for pk, peak in client.peaks.items():
        if pk.startswith("global#"):
            assert peak <= share(limits["global"], 4, int(pk.split("#")[1]))
    # Refusals name a tier that really was nearly spent, summed over its shards.
    assert all(r.used > r.limit - 4 * 2300 for r in refusals)


async def test_a_full_shard_is_not_a_refusal_while_another_shard_has_room(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    quotas = QuotaLedger(dynamodb, TABLE, {**LIMITS, "global": 40_000}, clock=clock, layouts=SHARDED)
    for k in range(3):  # three of the four global shards (10,000 each) are spent
        dynamodb.put_item(
            TableName=TABLE,
            Item={"pk": {"S": f"global#{k}"}, "sk": {"S": "2025-06-01"}, "tokens": {"N": "10000"}},
        )

    for _ in range(4):  # whichever shard the draw picks, the reservation lands on the one with room
        reservation = await quotas.reserve(user, org, estimated_input=500, max_tokens=1000, first=True)
        await quotas.settle(reservation, Usage(500, 1000))

    assert reservation.hold("global").pk == "global#3"
    assert tokens(dynamodb, "global#3") == 6000
    with pytest.raises(LimitExceeded) as refused:  # 4,000 left on shard 3, none elsewhere
        await quotas.reserve(user, org, estimated_input=3900, max_tokens=1000, first=True)
    assert (refused.value.tier, refused.value.used) == ("global", 36_000)


class InterferingClient(SerializedClient):
    """Plays other requests between this one's calls: before the first write to `pk` made after the first
    read, another request takes `taken` tokens there; before the second read, it gives them back."""

    def __init__(self, client: Any, pk: str, taken: int) -> None:
        super().__init__(client)
        self.pk, self.taken, self.reads, self.interfered = pk, taken, 0, False

    def _add(self, tokens: int) -> None:
        self._client.update_item(
            TableName=TABLE,
            Key={"pk": {"S": self.pk}, "sk": {"S": "2025-06-01"}},
            UpdateExpression="ADD tokens :t",
            ExpressionAttributeValues={":t": {"N": str(tokens)}},
        )

    def update_item(self, **kwargs: Any) -> Any:
        with self._lock:
            if kwargs["Key"]["pk"]["S"] == self.pk and self.reads == 1 and not self.interfered:
                self.interfered = True
                self._add(self.taken)
            return self._client.update_item(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        with self._lock:
            self.reads += 1
            if self.reads == 2 and self.interfered:
                self._add(-self.taken)
            return self._client.batch_get_item(**kwargs)


async def test_a_call_never_gets_more_output_than_every_tier_it_holds_has_room_for(
    dynamodb: Any, clock: Clock
) -> None:
    """Found by the sharded race in CI: a tier held in a round when little fitted kept that small hold,
    while a later round, with more room on the remaining tier, let the call grow; its settle then took
    the held shard past its share."""
    user, org = ids()
    client = InterferingClient(dynamodb, "global#3", taken=2500)
    quotas = sharded(client, clock, seed=1, organization=30_000, **{"global": 40_000})
    home_pk = f"org#{org}#{home(user, 3)}"
    full = {f"org#{org}#{i}": 10_000 for i in range(3)} | {f"global#{i}": 10_000 for i in range(4)}
    # Only 1,000 left on the user's home organization shard; only 3,000 on global shard 3.
    for pk, value in (full | {home_pk: 9_000, "global#3": 7_000}).items():
        dynamodb.put_item(
            TableName=TABLE, Item={"pk": {"S": pk}, "sk": {"S": "2025-06-01"}, "tokens": {"N": str(value)}}
        )

    # Round 1: the user's item is held (2,000); the organization and global shards refuse. Round 2: 1,000
    # fits, the organization shard is held at that, and another request takes global shard 3 first. Round
    # 3: that request gave it back, and 2,000 would fit on the global tier alone.
    reservation = await quotas.reserve(user, org, estimated_input=500, max_tokens=1500, first=True)
    assert client.interfered

    assert all(hold.amount >= reservation.amount for hold in reservation.holds)
    assert reservation.max_tokens == 500
    await quotas.settle(reservation, Usage(500, reservation.max_tokens))
    assert tokens(dynamodb, home_pk) <= 10_000
    assert tokens(dynamodb, "global#3") <= 10_000


async def test_a_request_stays_on_its_shards_so_each_call_writes_each_tier_once(
    dynamodb: Any, clock: Clock
) -> None:
    user, org = ids()
    client = SerializedClient(dynamodb)
    quotas = sharded(client, clock)
    previous: tuple[Reservation, Usage] | None = None
    for call in range(3):
        reservation = await quotas.reserve(
            user, org, estimated_input=500, max_tokens=1000, first=call == 0, settle=previous
        )
        if previous is not None:
            assert [h.pk for h in reservation.holds] == [h.pk for h in previous[0].holds]
        previous = (reservation, Usage(400, 300))
    assert previous is not None
    await quotas.settle(*previous, tool_calls=2)

    assert client.writes == 3 * 4
    home_pk = previous[0].hold("organization").pk
    assert home_pk == f"org#{org}#{home(user, 3)}"
    assert unpack(int(item(dynamodb, home_pk)[f"u:{user}"])) == (2100, 1, 2)
    assert tier_total(dynamodb, "global") == tier_total(dynamodb, f"org#{org}") == 2100


async def test_usage_sums_each_tier_over_its_shards_in_one_batched_read(dynamodb: Any, clock: Clock) -> None:
    user, org = ids()
    quotas = sharded(dynamodb, clock)
    for i, someone in enumerate([user, "b" + user, "c" + user]):
        reservation = await quotas.reserve(someone, org, estimated_input=100, max_tokens=1000, first=True)
        await quotas.settle(reservation, Usage(100 * (i + 1), 100))

    reads = SerializedClient(dynamodb)
    calls = []
    reads.batch_get_item = lambda **kw: calls.append(kw) or dynamodb.batch_get_item(**kw)  # type: ignore[method-assign]
    report = await sharded(reads, clock).report(user, org)

    assert len(calls) == 1
    assert {tier: v["used"] for tier, v in report["tiers"].items()} == {
        "user": 200,
        "organization": 900,
        "global": 900,
    }


async def test_a_new_layout_starts_with_its_day_so_old_and_new_instances_count_a_day_on_the_same_items(
    dynamodb: Any,
) -> None:
    user, org = ids()
    clock = Clock(datetime(2025, 5, 31, 23, 59, 50, tzinfo=UTC))
    limits = {**LIMITS, "global": 10_000}
    old = QuotaLedger(dynamodb, TABLE, limits, clock=clock)  # a deploy before the layout existed
    new = QuotaLedger(dynamodb, TABLE, limits, clock=clock, layouts=SHARDED)

    # On the last unsharded day both write `global`, so its one limit holds across both.
    held = [
        await ledger_.reserve(user, org, estimated_input=1000, max_tokens=3000, first=True)
        for ledger_ in (old, new)
    ]
    with pytest.raises(LimitExceeded):
        await new.reserve("x" + user, org, estimated_input=1900, max_tokens=3000, first=True)
    assert [h.hold("global").pk for h in held] == ["global", "global"]
    assert tokens(dynamodb, "global", "2025-05-31") == 8000

    clock.now += timedelta(seconds=15)  # the new layout's first day
    later = await new.reserve(
        user, org, estimated_input=1000, max_tokens=1000, first=False, settle=(held[1], Usage(900, 100))
    )
    await new.settle(held[0], Usage(500, 500))

    assert later.day == "2025-06-01" and later.hold("global").pk.startswith("global#")
    assert tokens(dynamodb, "global", "2025-05-31") == 2000  # both settled on their own day's item
    assert tier_total(dynamodb, "global") == 2000

"""A discrete-event simulation of the usage ledger on DynamoDB, in virtual time (results are *simulated*).

The ledgers' own code runs unchanged: the real `chatbot.meter.Meter` drives the real `chatbot.quota.
QuotaLedger` (the sharded design) or `bench.legacy_quota.QuotaLedger` (today's design: the ledger before
the scale work, verbatim), through the real `chatbot.dynamodb.call` (its retry policy and backoff), against
`SimulatedDynamoDB`, an async client whose calls take virtual time. The event loop's clock is virtual
(`VirtualLoop`): a timer fires when everything before it is done, so a minute of traffic at 10,000 chats a
second is simulated in CPU time, not wall time.

The model of DynamoDB, with the AWS documentation figures it rests on:
- one item takes at most 1,000 write units a second (a partition's limit; "each partition ... 1,000 WCU"):
  writes to an item are serialised, each occupying it for its units / 1,000 s; a write that would wait
  longer than `backlog_seconds` is throttled (`ThrottlingException`), as a hot partition is;
- a write unit covers 1 KB of the item (the larger of before and after); a transactional write costs two
  units per KB of each item ("TransactWriteItems ... two WCUs per 1 KB");
- a transaction holds its items for its duration; another transaction touching one of them meanwhile is
  cancelled with `TransactionConflict` ("a transactional conflict can occur during concurrent item-level
  requests on an item within a transaction"), it does not queue;
- every call takes a round trip drawn from a log-normal distribution ("single-digit millisecond"; median
  4 ms, p99 about 12 ms here), and a transaction in addition its two-phase commit (median 15 ms).
Not modelled: partition splits and adaptive capacity (they help a hot *partition*, never a hot *item*),
read capacity, the 4 MB/16 MB batch limits, network failures (the fault tests cover those on moto).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import math
import random
import selectors
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from chatbot.errors import LimitExceeded, Unavailable
from chatbot.meter import Meter
from chatbot.quota import QuotaLedger
from chatbot.room import MIN_USEFUL_OUTPUT
from chatbot.shards import Layouts
from chatbot.usage import Usage

from bench import expressions, legacy_quota

Item = dict[str, Any]
TABLE = "ChatbotUsage"
NOON = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ virtual time


class _Selector(selectors.SelectSelector):
    """Never waits: a `select` with a timeout moves the virtual clock to the next timer instead."""

    def __init__(self, loop: VirtualLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:
            raise RuntimeError("the simulation has nothing left to do but wait forever")
        self._loop.now += max(0.0, timeout)
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock only moves when every task is waiting for a timer."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_Selector(self))

    def time(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------------- the store


@dataclass
class Model:
    """The figures of the DynamoDB model (see the module's docstring)."""

    item_wcu_per_second: float = 1000.0
    backlog_seconds: float = 0.05
    latency_median: float = 0.004
    latency_sigma: float = 0.47  # p99 = median * e^(2.33 sigma) ~ 3x the median
    transaction_median: float = 0.015


@dataclass
class Stats:
    """What the store saw."""

    write_units: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    conflicts: int = 0
    throttles: int = 0
    largest_item: int = 0


def _error(code: str, operation: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, **extra}, operation)


class SimulatedDynamoDB:
    """The usage table in memory, its calls taking virtual time under the model's rules."""

    def __init__(self, model: Model, rng: random.Random) -> None:
        self.model, self.rng = model, rng
        self.items: dict[tuple[str, str], Item] = {}
        self.busy_until: dict[tuple[str, str], float] = {}
        self.in_transaction_until: dict[tuple[str, str], float] = {}
        self.sizes: dict[tuple[str, str], int] = {}
        self.tokens_seen: dict[str, object] = {}
        self.stats = Stats()
        self.on_write: Callable[[tuple[str, str], Item], None] | None = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _latency(self, median: float | None = None) -> float:
        return (median or self.model.latency_median) * math.exp(self.rng.gauss(0, self.model.latency_sigma))

    @staticmethod
    def _key(key: Item) -> tuple[str, str]:
        return key["pk"]["S"], key["sk"]["S"]

    def _occupy(self, key: tuple[str, str], units: float, operation: str) -> float:
        """Book `units` write units on the item; when the write can start. Throttled past the backlog."""
        now = self._now()
        start = max(now, self.busy_until.get(key, 0.0))
        if start - now > self.model.backlog_seconds:
            self.stats.throttles += 1
            raise _error("ThrottlingException", operation)
        self.busy_until[key] = start + units / self.model.item_wcu_per_second
        self.stats.write_units += units
        return start

    def _units(self, before: Item | None, after: Item | None) -> int:
        size = max(expressions.item_size(before or {}), expressions.item_size(after or {}))
        self.stats.largest_item = max(self.stats.largest_item, size)
        return max(1, math.ceil(size / 1024))

    async def update_item(self, **request: Any) -> Item:
        self.stats.calls["UpdateItem"] += 1
        await asyncio.sleep(self._latency() / 2)
        key = self._key(request["Key"])
        if self.in_transaction_until.get(key, 0.0) > self._now():
            self.stats.conflicts += 1
            raise _error("TransactionConflictException", "UpdateItem")
        # Units from the item's size as it is now plus the few bytes a write adds (the exact size is known
        # only once it is its turn).
        size = self.sizes.get(key, 0) + 64
        start = self._occupy(key, max(1, math.ceil(size / 1024)), "UpdateItem")
        await asyncio.sleep(start - self._now())
        # Applied in arrival order on the item: evaluate again at the moment it is its turn.
        old = self.items.get(key)
        if not expressions.condition_holds(old, request):
            await asyncio.sleep(self._latency() / 2)
            extra = {"Item": old} if old is not None else {}
            raise _error("ConditionalCheckFailedException", "UpdateItem", **extra)
        new = dict(old or request["Key"])
        touched = expressions.apply_update(new, request)
        self.items[key] = new
        self.sizes[key] = expressions.item_size(new)
        self.stats.largest_item = max(self.stats.largest_item, self.sizes[key])
        if self.on_write is not None:
            self.on_write(key, new)
        await asyncio.sleep(self._latency() / 2)
        return {"Attributes": {name: new[name] for name in touched if name in new}}

    async def transact_write_items(self, **request: Any) -> Item:
        self.stats.calls["TransactWriteItems"] += 1
        await asyncio.sleep(self._latency() / 2)
        token = request.get("ClientRequestToken")
        if token is not None and token in self.tokens_seen:
            await asyncio.sleep(self._latency() / 2)
            return {}
        updates = [action["Update"] for action in request["TransactItems"]]
        keys = [self._key(update["Key"]) for update in updates]
        now = self._now()
        busy = [self.in_transaction_until.get(key, 0.0) > now for key in keys]
        if any(busy):
            self.stats.conflicts += 1
            reasons = [{"Code": "TransactionConflict" if b else "None"} for b in busy]
            await asyncio.sleep(self._latency() / 2)
            raise _error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)
        failed = [
            not expressions.condition_holds(self.items.get(key), u)
            for key, u in zip(keys, updates, strict=True)
        ]
        for key in keys:
            self._occupy(key, 2 * self._units(self.items.get(key), self.items.get(key)), "TransactWriteItems")
        if any(failed):
            reasons = [{"Code": "ConditionalCheckFailed" if f else "None"} for f in failed]
            await asyncio.sleep(self._latency() / 2)
            raise _error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)
        duration = self._latency(self.model.transaction_median)
        for key, update in zip(keys, updates, strict=True):
            self.in_transaction_until[key] = now + duration
            item = self.items.setdefault(key, {**update["Key"]})
            expressions.apply_update(item, update)
            if self.on_write is not None:
                self.on_write(key, item)
        if token is not None:
            self.tokens_seen[token] = True
        await asyncio.sleep(duration + self._latency() / 2)
        return {}

    async def batch_get_item(self, **request: Any) -> Item:
        self.stats.calls["BatchGetItem"] += 1
        await asyncio.sleep(self._latency())
        responses: dict[str, list[Item]] = {}
        for table, asked in request["RequestItems"].items():
            found = (self.items.get(self._key(key)) for key in asked["Keys"])
            responses[table] = [dict(item) for item in found if item is not None]
        return {"Responses": responses, "UnprocessedKeys": {}}


# ------------------------------------------------------------------------------------------- the traffic


@dataclass
class Scenario:
    """One run: a design, a rate of new chats, for `seconds` of virtual time."""

    design: str  # "today" | "sharded"
    rate: float
    seconds: float
    global_shards: int = 1
    org_shards: int = 1
    limits: dict[str, int] | None = None  # None: sized so that no tier is spent within the run
    orgs: int = 2000
    users_per_org: int = 50
    big_org_share: float = 0.2  # the share of all chats that one large organization makes
    model_seconds: float = 1.0
    calls_per_chat: int = 3
    seed: int = 1


TOKENS_PER_CALL = (2000, 3000, 4000)  # estimated input of calls 1..3 (the context grows)
MAX_TOKENS = 1024


def sized_limits(scenario: Scenario) -> dict[str, int]:
    """Limits no tier reaches within the run (twice what the run could reserve at most)."""
    per_chat = sum(TOKENS_PER_CALL[: scenario.calls_per_chat]) + scenario.calls_per_chat * MAX_TOKENS
    total = int(2 * scenario.rate * (scenario.seconds + 10) * per_chat) + 10**6
    return {
        "user": 10**9,
        "organization": max(10**6, int(total * scenario.big_org_share * 1.5)),
        "global": total,
    }


@dataclass
class Result:
    """What one run measured."""

    scenario: Scenario
    chats: int = 0
    completed: int = 0
    false_refusals: int = 0
    true_refusals: int = 0
    slack_refusals: int = 0
    peak_fill: dict[str, float] = field(default_factory=dict)  # a tier's highest total / its limit
    unavailable: int = 0
    reservation_latencies: list[float] = field(default_factory=list)
    peak_over: dict[str, int] = field(default_factory=dict)  # a tier's highest total above its limit
    stats: Stats = field(default_factory=Stats)

    def row(self) -> dict[str, Any]:
        lat = sorted(self.reservation_latencies) or [0.0]
        quantile = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        return {
            "design": self.scenario.design,
            "rate": self.scenario.rate,
            "seconds": self.scenario.seconds,
            "shards": f"{self.scenario.global_shards}/{self.scenario.org_shards}",
            "chats": self.chats,
            "completed": self.completed,
            "false_refusals": self.false_refusals,
            "unavailable": self.unavailable,
            "true_refusals": self.true_refusals,
            "slack_refusals": self.slack_refusals,
            "peak_fill": self.peak_fill,
            "conflicts": self.stats.conflicts,
            "throttles": self.stats.throttles,
            "p50_ms": 1000 * quantile(0.5),
            "p99_ms": 1000 * quantile(0.99),
            "wcu_per_chat": self.stats.write_units / max(1, self.chats),
            "largest_item": self.stats.largest_item,
            "over_limit": max(self.peak_over.values(), default=0),
        }


class _Legacy(legacy_quota.QuotaLedger):
    """Today's ledger, taking (and ignoring) the tool-call count the meter now passes along."""

    async def reserve(self, *args: Any, tool_calls: int = 0, **kwargs: Any) -> Any:  # type: ignore[override]
        return await super().reserve(*args, **kwargs)

    async def settle(self, *args: Any, tool_calls: int = 0, **kwargs: Any) -> None:  # type: ignore[override]
        await super().settle(*args, **kwargs)


def _tier_of(pk: str) -> str:
    head = pk.split("#", 2)
    return "user#" + head[1] if head[0] == "user" else ("org#" + head[1] if head[0] == "org" else "global")


async def _run(scenario: Scenario) -> Result:
    loop = asyncio.get_running_loop()
    rng = random.Random(scenario.seed)
    store = SimulatedDynamoDB(Model(), random.Random(scenario.seed + 1))
    limits = scenario.limits or sized_limits(scenario)
    result = Result(scenario, stats=store.stats)
    clock = lambda: NOON + timedelta(seconds=loop.time())  # noqa: E731
    ledger: Any
    if scenario.design == "today":
        ledger = _Legacy(store, TABLE, limits, clock=clock)
    else:
        layout = Layouts.parse(f"2026-01-01:{scenario.global_shards}/{scenario.org_shards}")
        ledger = QuotaLedger(
            store, TABLE, limits, clock=clock, layouts=layout, rng=random.Random(scenario.seed + 2)
        )

    # Every tier's total, kept as items change, so "never over the limit" is checked after every write.
    items_tokens: dict[str, int] = {}
    totals: Counter[str] = Counter()

    def watch(key: tuple[str, str], item: Item) -> None:
        pk = key[0]
        tokens = int(item.get("tokens", {}).get("N", "0"))
        tier = _tier_of(pk)
        totals[tier] += tokens - items_tokens.get(pk, 0)
        items_tokens[pk] = tokens
        limit = (
            limits["global"]
            if tier == "global"
            else limits["organization" if tier.startswith("org#") else "user"]
        )
        if tier in ("global", "org#o0"):
            result.peak_fill[tier] = max(result.peak_fill.get(tier, 0.0), totals[tier] / limit)
        if totals[tier] > limit:
            result.peak_over[tier] = max(result.peak_over.get(tier, 0), totals[tier] - limit)

    store.on_write = watch

    async def chat(user: str, org: str) -> None:
        meter = Meter(ledger, user, org)
        call = 0
        try:
            for call, estimate in enumerate(TOKENS_PER_CALL[: scenario.calls_per_chat]):
                started = loop.time()
                max_tokens = await meter.reserve(estimate, MAX_TOKENS)
                result.reservation_latencies.append(loop.time() - started)
                await asyncio.sleep(scenario.model_seconds * rng.uniform(0.5, 1.5))
                used_input = int(estimate * rng.uniform(0.6, 0.9))
                meter.observe(
                    Usage(input_tokens=used_input, output_tokens=rng.randint(50, max_tokens)), complete=True
                )
                if call + 1 < scenario.calls_per_chat:
                    meter.tool_ran()
            result.completed += 1
        except LimitExceeded as refusal:
            # Judged by the ledger's own reading of the tier, summed over its shards (the store's totals a
            # moment later are no judge: the refusal gives tokens back, and others settle meanwhile). Room for
            # the call in the sum but in no one shard is the shards' slack while it is under one reservation
            # per shard; beyond that the refusal is false.
            room = refusal.limit - refusal.used
            needed = TOKENS_PER_CALL[call] + MIN_USEFUL_OUTPUT
            shards = {"global": scenario.global_shards, "organization": scenario.org_shards}.get(
                refusal.tier, 1
            )
            if room < needed:
                result.true_refusals += 1
            elif room < shards * (TOKENS_PER_CALL[call] + MAX_TOKENS):
                result.slack_refusals += 1
            else:
                result.false_refusals += 1
        except Unavailable:
            result.unavailable += 1
        finally:
            await meter.close()

    weights = [scenario.big_org_share] + [(1 - scenario.big_org_share) / (scenario.orgs - 1)] * (
        scenario.orgs - 1
    )
    cumulative = list(_accumulate(weights))
    tasks: list[asyncio.Task[None]] = []
    now = 0.0
    while True:
        now += rng.expovariate(scenario.rate)
        if now >= scenario.seconds:
            break
        await asyncio.sleep(now - loop.time())
        org_index = _bisect(cumulative, rng.random())
        # The large organization has many users; the others `users_per_org`.
        users = scenario.users_per_org * (200 if org_index == 0 else 1)
        user = f"u{org_index}-{rng.randrange(users)}"
        tasks.append(loop.create_task(chat(user, f"o{org_index}")))
        result.chats += 1
    await asyncio.gather(*tasks)
    return result


def _accumulate(values: list[float]) -> list[float]:
    total, out = 0.0, []
    for value in values:
        total += value
        out.append(total)
    return out


def _bisect(cumulative: list[float], x: float) -> int:
    lo, hi = 0, len(cumulative) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """The ledger logs and emits a metric per reservation; in a simulation of thousands of chats that
    would be the run's cost, not the ledger's."""
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def run(scenario: Scenario) -> Result:
    """Simulate one scenario (in a fresh virtual-time loop)."""
    random.seed(scenario.seed)  # the retry policy's jitter draws from the module's generator
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(_run(scenario))
    finally:
        loop.close()

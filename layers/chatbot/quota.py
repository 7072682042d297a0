"""The three daily token quotas (user, organization, global), kept in DynamoDB with reservations.

Each tier has one item per UTC day: `pk` = `user#<id>` | `org#<id>` | `global`, `sk` = `YYYY-MM-DD`.
A new day is a new key, so quotas reset at midnight UTC with no job; `expires_at` lets the table's TTL
drop old days.

The guarantee is that no tier's `tokens` ever exceeds its limit. Before each model call the caller
reserves (estimated input + the call's `max_tokens`) on all three tiers in one `TransactWriteItems`
whose conditions say "there is still room for this"; after the call the reservation is settled to the
actual count (ADD actual - reserved). So `tokens` counts settled usage plus reservations in flight: a
crash between reserve and settle leaves the reservation in place, which over-counts but never
under-counts. To keep to one write per model call, settling call N rides in the same transaction as
reserving call N+1; only the last call of a request is settled on its own.

Estimates are upper bounds (see `estimate_input_tokens`), and output can never exceed `max_tokens`, so
settling only ever gives tokens back. Were the actual count ever above the reservation, it is recorded
anyway (usage is never dropped) and a warning is logged.
"""

from __future__ import annotations

import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

import anyio
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ProxyConnectionError,
    ReadTimeoutError,
)

from chatbot.errors import LimitExceeded, Unavailable

logger = logging.getLogger(__name__)

TIERS = ("user", "organization", "global")
"""Tier names, in the order a refusal names them when several are equally spent."""

MIN_USEFUL_OUTPUT = 256
"""A call is refused rather than started when fewer output tokens than this would fit."""

EXPIRY_DAYS = 7
"""Days after its date at which a usage item expires (DynamoDB TTL)."""

MAX_CONDITION_ROUNDS = 12
"""Reserve attempts that may fail on a condition (others took the room) before the request is refused."""

MAX_TRANSIENT_ATTEMPTS = 6
"""Attempts of one write or read under throttling or transaction conflicts before giving up."""

BACKOFF_BASE_SECONDS = 0.02
BACKOFF_CAP_SECONDS = 1.0

# Per-message and tool-use framing that the API adds around the JSON the caller sends (role markers,
# the tool-use system prompt of a few hundred tokens). Generous on purpose: estimates must be upper bounds.
FRAMING_TOKENS = 64
TOOL_USE_SYSTEM_TOKENS = 1024

_COUNTERS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

# Rejections: this attempt did not happen. The retry still keeps the idempotency token: boto3 retries
# inside one call, so an earlier attempt of the same call may have been applied with its reply lost (a
# 500), and only the same token stops the retry from applying it twice.
_THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "LimitExceededException",
    }
)
# Outcome unknown: retry with the same idempotency token so the write is applied at most once.
_UNKNOWN_OUTCOME_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "TransactionInProgressException"}
)
_TRANSIENT_REASONS = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError)
_UNKNOWN_OUTCOME_ERRORS = (ReadTimeoutError, ConnectionClosedError)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def _utc(now: datetime) -> datetime:
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _next_midnight(now: datetime) -> datetime:
    return datetime.combine(_utc(now).date() + timedelta(days=1), time(0), tzinfo=UTC)


def seconds_until_reset(now: datetime) -> int:
    """Whole seconds (rounded up, at least 1) until the quotas reset at the next midnight UTC."""
    remaining = (_next_midnight(now) - _utc(now)).total_seconds()
    return max(1, int(-(-remaining // 1)))


def resets_at(now: datetime) -> str:
    """The next midnight UTC in ISO 8601, e.g. `2025-06-02T00:00:00Z`."""
    return _next_midnight(now).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json", exclude_none=True)
    return str(value)


def estimate_input_tokens(payload: object) -> int:
    """An upper bound on a Messages request's input tokens, from its JSON.

    Claude's tokenizer turns text into tokens that each stand for at least one byte of UTF-8, so a
    text's byte length bounds its token count. The JSON encoding of `system`, `tools`, `messages` (and
    `tool_choice`) contains every prompt text plus quotes, keys and brackets, so its byte length bounds
    the tokens of the text; on top come the tokens the API adds itself (role framing, and the tool-use
    system prompt when tools are given), covered by generous constants. Cached prompt parts are part of
    the prompt, so the bound also covers cache creation and cache read tokens. Given a mapping, only
    those prompt keys count (model, max_tokens and the like are not input); anything else is encoded
    whole. Pydantic objects (SDK types) are encoded by their `model_dump`.
    """
    tools_present = False
    if isinstance(payload, Mapping):
        prompt = {k: payload[k] for k in ("system", "tools", "messages", "tool_choice") if k in payload}
        tools_present = bool(payload.get("tools"))
    else:
        prompt = payload  # type: ignore[assignment]
    encoded = json.dumps(prompt, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    overhead = FRAMING_TOKENS + (TOOL_USE_SYSTEM_TOKENS if tools_present else 0)
    return len(encoded.encode("utf-8")) + overhead


@dataclass(frozen=True)
class Usage:
    """One model call's counts, as the API reports them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def counted(self) -> int:
        """What the quotas count: input + cache creation + cache read + output."""
        return (
            self.input_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
            + self.output_tokens
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_creation_input_tokens=self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            cache_read_input_tokens=self.cache_read_input_tokens + other.cache_read_input_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        """The counts as the `usage` event's data."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }


@dataclass(frozen=True)
class Reservation:
    """Tokens held on the three tiers of `day` for one model call; `max_tokens` is what fitted."""

    user_id: str
    org_id: str
    day: str
    amount: int
    max_tokens: int


@dataclass
class _Change:
    """What one write does to one usage item: token delta, counter deltas, and an optional room check."""

    tokens: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    reserving: bool = False
    limit: int = 0

    @property
    def cap(self) -> int:
        # The item may hold at most this many tokens before the write, or the write would overflow.
        return self.limit - self.tokens


Key = tuple[str, str]


class QuotaLedger:
    """Daily token quotas on three tiers, with reservations, in the DynamoDB table `table_name`.

    `client` is a boto3 DynamoDB client (created once, shared); its calls run in worker threads.
    `limits` maps each of `user`, `organization`, `global` to its daily limit in tokens.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        limits: dict[str, int],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        missing = [tier for tier in TIERS if tier not in limits]
        if missing:
            raise ValueError(f"limits lack the tiers {missing}")
        self._client = client
        self._table = table_name
        self._limits = {tier: int(limits[tier]) for tier in TIERS}
        self._clock = clock

    # ---------------------------------------------------------------- public API

    async def reserve(
        self,
        user_id: str,
        org_id: str,
        *,
        estimated_input: int,
        max_tokens: int,
        first: bool,
        settle: tuple[Reservation, Usage] | None = None,
    ) -> Reservation:
        """Hold room for one model call on all three tiers, lowering `max_tokens` to what is left.

        `first=True` also counts a request on each tier. `settle` settles the previous call of the same
        request in the same transaction (one write per model call). Raises `LimitExceeded` when less
        than `estimated_input` + a useful output is left on some tier (any `settle` is still recorded
        first), `Unavailable` when the table cannot be reached.
        """
        if estimated_input < 0 or max_tokens < 1:
            raise ValueError("estimated_input must be >= 0 and max_tokens >= 1")
        now = self._clock()
        day = _utc(now).date().isoformat()
        keys = self._keys(user_id, org_id, day)
        pending = self._settle_changes(*settle) if settle else {}
        floor = min(MIN_USEFUL_OUTPUT, max_tokens)
        # Before reading anything, the most that could fit is what an empty day leaves.
        want = min(max_tokens, min(self._limits.values()) - estimated_input)
        tightest: tuple[str, int] | None = None
        for _ in range(MAX_CONDITION_ROUNDS):
            if want >= floor:
                reservation = Reservation(user_id, org_id, day, estimated_input + want, want)
                changes = self._merge(pending, self._reserve_changes(keys, reservation.amount, first))
                fits = all(c.cap >= 0 for c in changes.values() if c.reserving)
                if fits and await self._write(changes, now, carries_settle=bool(pending)):
                    if want < max_tokens:
                        logger.info("quota: max_tokens %d lowered to %d for %s", max_tokens, want, user_id)
                    return reservation
            used = await self._read(list(keys.values()))
            # Left on each tier once the pending settle (if any) is applied.
            left = {
                tier: self._limits[tier] - (used[key] + (pending[key].tokens if key in pending else 0))
                for tier, key in keys.items()
            }
            tier = min(TIERS, key=lambda t: left[t])
            tightest = (tier, self._limits[tier] - left[tier])
            want = min(max_tokens, left[tier] - estimated_input)
            if want < floor:
                break
        else:
            logger.warning("quota: gave up reserving for %s after %d rounds", user_id, MAX_CONDITION_ROUNDS)
        if pending:
            await self._write(pending, now, carries_settle=True)
        assert tightest is not None  # the loop reads at least once before leaving without a reservation
        tier, used_tokens = tightest
        raise LimitExceeded(
            tier=tier,
            limit=self._limits[tier],
            used=max(0, used_tokens),
            resets_at=resets_at(now),
            retry_after=seconds_until_reset(now),
        )

    async def settle(self, reservation: Reservation, usage: Usage) -> None:
        """Replace a reservation by the call's actual usage on its three tiers (of the reservation's day).

        Never silently dropped: retried under throttling and conflicts, then `Unavailable` is raised
        and the lost settle is logged as an error (the reservation then stays, over-counting).
        """
        await self._write(self._settle_changes(reservation, usage), self._clock(), carries_settle=True)

    async def report(self, user_id: str, org_id: str) -> dict[str, Any]:
        """Today's usage per tier: the body of `GET /api/chatbot/usage`.

        `used` includes reservations of calls in flight, which is what the limits are checked against.
        """
        now = self._clock()
        day = _utc(now).date().isoformat()
        keys = self._keys(user_id, org_id, day)
        used = await self._read(list(keys.values()))
        return {
            "date": day,
            "resets_at": resets_at(now),
            "tiers": {
                tier: {"used": max(0, used[key]), "limit": self._limits[tier]} for tier, key in keys.items()
            },
        }

    # ---------------------------------------------------------------- changes

    @staticmethod
    def _keys(user_id: str, org_id: str, day: str) -> dict[str, Key]:
        return {
            "user": (f"user#{user_id}", day),
            "organization": (f"org#{org_id}", day),
            "global": ("global", day),
        }

    def _reserve_changes(self, keys: dict[str, Key], amount: int, first: bool) -> dict[Key, _Change]:
        return {
            key: _Change(tokens=amount, requests=1 if first else 0, reserving=True, limit=self._limits[tier])
            for tier, key in keys.items()
        }

    def _settle_changes(self, reservation: Reservation, usage: Usage) -> dict[Key, _Change]:
        actual = usage.counted
        if actual > reservation.amount:
            logger.warning(
                "quota: actual usage %d exceeds the reservation %d (user %s, org %s, %s); "
                "recording the actual count, which may take a tier past its limit",
                actual,
                reservation.amount,
                reservation.user_id,
                reservation.org_id,
                reservation.day,
            )
        counters = {name: getattr(usage, name) for name in _COUNTERS}
        keys = self._keys(reservation.user_id, reservation.org_id, reservation.day)
        delta = actual - reservation.amount
        return {key: _Change(tokens=delta, counters=dict(counters)) for key in keys.values()}

    @staticmethod
    def _merge(first: dict[Key, _Change], second: dict[Key, _Change]) -> dict[Key, _Change]:
        # A transaction may touch each item once, so a settle and a reservation of the same item
        # become one update whose room check covers both.
        merged = {key: replace(c, counters=dict(c.counters)) for key, c in first.items()}
        for key, c in second.items():
            if key not in merged:
                merged[key] = replace(c, counters=dict(c.counters))
                continue
            m = merged[key]
            m.tokens += c.tokens
            m.requests += c.requests
            for name, value in c.counters.items():
                m.counters[name] = m.counters.get(name, 0) + value
            if c.reserving:
                m.reserving, m.limit = True, c.limit
        return merged

    def _update(self, key: Key, change: _Change, now: datetime) -> dict[str, Any]:
        day = date.fromisoformat(key[1])
        expires = datetime.combine(day + timedelta(days=EXPIRY_DAYS), time(0), tzinfo=UTC)
        names = {"#t": "tokens", "#u": "updated_at", "#e": "expires_at"}
        values: dict[str, Any] = {
            ":t": {"N": str(change.tokens)},
            ":u": {"S": _utc(now).isoformat()},
            ":e": {"N": str(int(expires.timestamp()))},
        }
        adds = ["#t :t"]
        for i, (name, value) in enumerate(sorted(change.counters.items())):
            names[f"#c{i}"] = name
            values[f":c{i}"] = {"N": str(value)}
            adds.append(f"#c{i} :c{i}")
        if change.requests:
            names["#r"] = "requests"
            values[":r"] = {"N": str(change.requests)}
            adds.append("#r :r")
        update: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"pk": {"S": key[0]}, "sk": {"S": key[1]}},
            "UpdateExpression": "SET #u = :u, #e = :e ADD " + ", ".join(adds),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if change.reserving:
            update["ConditionExpression"] = "attribute_not_exists(#t) OR #t <= :cap"
            values[":cap"] = {"N": str(change.cap)}
        return {"Update": update}

    # ---------------------------------------------------------------- DynamoDB calls

    async def _write(self, changes: dict[Key, _Change], now: datetime, *, carries_settle: bool) -> bool:
        """Apply `changes` in one transaction; False when a room check failed, True when applied.

        A write that carries a settle is shielded from cancellation (a client hanging up must not drop
        usage) and is retried when the store is briefly unreachable; a failure is logged as an error.
        """
        items = [self._update(key, change, now) for key, change in changes.items()]
        if not carries_settle:
            return await self._transact(items, retry_unreachable=False)
        with anyio.CancelScope(shield=True):
            try:
                applied = await self._transact(items, retry_unreachable=True)
            except Unavailable:
                logger.error(
                    "quota: SETTLE LOST, usage not recorded (the reservation stays counted): %s",
                    json.dumps(items, default=str),
                )
                raise
        return applied

    async def _transact(self, items: list[dict[str, Any]], *, retry_unreachable: bool) -> bool:
        token = str(uuid.uuid4())
        attempts = MAX_TRANSIENT_ATTEMPTS if retry_unreachable else 1
        failure: Exception | None = None
        for attempt in range(MAX_TRANSIENT_ATTEMPTS):
            if attempt:
                await _backoff(attempt)
            try:
                await anyio.to_thread.run_sync(
                    partial(self._client.transact_write_items, TransactItems=items, ClientRequestToken=token)
                )
                return True
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code == "TransactionCanceledException":
                    reasons = _cancellation_reasons(error)
                    if "ConditionalCheckFailed" in reasons:
                        return False
                    if reasons & _TRANSIENT_REASONS:
                        failure = error
                        continue
                elif code in _THROTTLING_CODES or code in _UNKNOWN_OUTCOME_CODES:
                    failure = error
                    continue
                logger.error("quota: DynamoDB refused a usage write: %s", error)
                raise Unavailable("The usage store refused the request.") from error
            except _UNREACHABLE as error:
                failure = error
                if attempt + 1 >= attempts:
                    break
            except _UNKNOWN_OUTCOME_ERRORS as error:
                failure = error  # the same token on retry makes it applied at most once
        logger.error("quota: usage write failed after retries: %r", failure)
        raise Unavailable("The usage store is unavailable; please try again shortly.") from failure

    async def _read(self, keys: list[Key]) -> dict[Key, int]:
        """The `tokens` of each item (0 where absent), read consistently in one BatchGetItem."""
        request: dict[str, Any] = {
            self._table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in dict.fromkeys(keys)],
                "ProjectionExpression": "pk, sk, #t",
                "ExpressionAttributeNames": {"#t": "tokens"},
                "ConsistentRead": True,
            }
        }
        found: dict[Key, int] = dict.fromkeys(keys, 0)
        failure: Exception | None = None
        for attempt in range(MAX_TRANSIENT_ATTEMPTS):
            if attempt:
                await _backoff(attempt)
            try:
                response = await anyio.to_thread.run_sync(
                    partial(self._client.batch_get_item, RequestItems=request)
                )
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code in _THROTTLING_CODES or code in _UNKNOWN_OUTCOME_CODES:
                    failure = error
                    continue
                logger.error("quota: DynamoDB refused a usage read: %s", error)
                raise Unavailable("The usage store refused the request.") from error
            except (*_UNREACHABLE, *_UNKNOWN_OUTCOME_ERRORS) as error:
                raise Unavailable("The usage store is unreachable.") from error
            for item in response.get("Responses", {}).get(self._table, []):
                found[(item["pk"]["S"], item["sk"]["S"])] = int(item.get("tokens", {}).get("N", "0"))
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(self._table):
                return found
            request = unprocessed
        logger.error("quota: usage read failed after retries: %r", failure)
        raise Unavailable("The usage store is unavailable; please try again shortly.") from failure


def _cancellation_reasons(error: ClientError) -> set[str]:
    """The reason codes of a cancelled transaction, from the parsed reasons or else the message."""
    reasons = error.response.get("CancellationReasons")
    if isinstance(reasons, list):
        return {str(r.get("Code", "None")) for r in reasons if isinstance(r, dict)}
    message = str(error.response.get("Error", {}).get("Message", ""))
    if "[" in message and "]" in message:
        inner = message[message.rfind("[") + 1 : message.rfind("]")]
        return {part.strip() for part in inner.split(",") if part.strip()}
    return set()


async def _backoff(attempt: int) -> None:
    # Full jitter: spreads out retries of many requests that collided on the same items.
    await anyio.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)))

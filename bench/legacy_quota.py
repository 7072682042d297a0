"""The usage ledger as it was before the scale work (commit d71c172, layers/chatbot/quota.py), kept verbatim
except for its imports, so the simulation can run *today's design* with its own request logic: one
three-item `TransactWriteItems` per model call on `user#`, `org#` and the single `global` item."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import anyio
from chatbot import dynamodb
from chatbot.errors import LimitExceeded, Unavailable
from chatbot.room import TIERS, Room
from chatbot.usage import Usage

logger = logging.getLogger(__name__)

EXPIRY_DAYS = 7
"""Days after its date at which a usage item expires (DynamoDB TTL)."""

MAX_CONDITION_ROUNDS = 12
"""Reserve attempts that may fail on a condition (others took the room) before the request is refused."""


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


@dataclass(frozen=True)
class Reservation:
    """Tokens held on the three tiers of `day` for one model call; `max_tokens` is what fitted."""

    user_id: str
    org_id: str
    day: str
    amount: int
    max_tokens: int


Key = tuple[str, str]


def usage_key(key: Key) -> dict[str, Any]:
    """The DynamoDB key of a usage item."""
    return {"pk": {"S": key[0]}, "sk": {"S": key[1]}}


def tier_keys(user_id: str, org_id: str, day: str) -> dict[str, Key]:
    """The items of the three tiers for one user of one organization on `day`."""
    return {
        "user": (f"user#{user_id}", day),
        "organization": (f"org#{org_id}", day),
        "global": ("global", day),
    }


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

    def plus(self, other: _Change) -> _Change:
        """Both changes as one update (a transaction may touch each item once); the room check covers both."""
        counters = dict(self.counters)
        for name, value in other.counters.items():
            counters[name] = counters.get(name, 0) + value
        return _Change(
            tokens=self.tokens + other.tokens,
            counters=counters,
            requests=self.requests + other.requests,
            reserving=self.reserving or other.reserving,
            limit=other.limit if other.reserving else self.limit,
        )


Changes = dict[Key, _Change]


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

    @property
    def limits(self) -> dict[str, int]:
        """Each tier's daily limit."""
        return dict(self._limits)

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
        first), `Unavailable` when the table cannot be reached (then nothing was recorded).
        """
        if estimated_input < 0 or max_tokens < 1:
            raise ValueError("estimated_input must be >= 0 and max_tokens >= 1")
        now = self._clock()
        day = _utc(now).date().isoformat()
        keys = tier_keys(user_id, org_id, day)
        pending = self._settle_changes(*settle) if settle else {}
        room, measured = Room.empty(self._limits), False
        for _ in range(MAX_CONDITION_ROUNDS):
            fits = room.output_that_fits(estimated_input, max_tokens)
            if fits is not None:
                reservation = Reservation(user_id, org_id, day, estimated_input + fits, fits)
                reserving = self._reserve_changes(keys, reservation.amount, first)
                if await self._write(_merge(pending, reserving), now, carries_settle=bool(pending)):
                    if fits < max_tokens:
                        logger.info("quota: max_tokens %d lowered to %d for %s", max_tokens, fits, user_id)
                    return reservation
            elif measured:
                break
            room, measured = await self._room(keys, pending), True
        else:
            logger.warning("quota: gave up reserving for %s after %d rounds", user_id, MAX_CONDITION_ROUNDS)
        if pending:
            await self._write(pending, now, carries_settle=True)
        raise _refusal(room, now)

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
        keys = tier_keys(user_id, org_id, day)
        used = await self._read(list(keys.values()))
        return {
            "date": day,
            "resets_at": resets_at(now),
            "tiers": {
                tier: {"used": max(0, used[key]), "limit": self._limits[tier]} for tier, key in keys.items()
            },
        }

    # ---------------------------------------------------------------- changes

    async def _room(self, keys: dict[str, Key], pending: Changes) -> Room:
        """The room each tier has now, once the pending settle (if any) is applied."""
        used = await self._read(list(keys.values()))
        return Room(
            self._limits,
            {tier: used[key] + (pending[key].tokens if key in pending else 0) for tier, key in keys.items()},
        )

    def _reserve_changes(self, keys: dict[str, Key], amount: int, first: bool) -> Changes:
        return {
            key: _Change(tokens=amount, requests=1 if first else 0, reserving=True, limit=self._limits[tier])
            for tier, key in keys.items()
        }

    def _settle_changes(self, reservation: Reservation, usage: Usage) -> Changes:
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
        keys = tier_keys(reservation.user_id, reservation.org_id, reservation.day)
        delta = actual - reservation.amount
        return {key: _Change(tokens=delta, counters=usage.as_dict()) for key in keys.values()}

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
            "Key": usage_key(key),
            "UpdateExpression": "SET #u = :u, #e = :e ADD " + ", ".join(adds),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if change.reserving:
            update["ConditionExpression"] = "attribute_not_exists(#t) OR #t <= :cap"
            values[":cap"] = {"N": str(change.cap)}
        return {"Update": update}

    # ---------------------------------------------------------------- DynamoDB calls

    async def _write(self, changes: Changes, now: datetime, *, carries_settle: bool) -> bool:
        """Apply `changes` in one transaction; False when a room check failed, True when applied.

        One idempotency token for all of the write's retries: an attempt applied with its reply lost is
        then not applied again. A write that carries a settle is shielded from cancellation (a client
        hanging up must not drop usage), and its failure is logged as an error.
        """
        items = [self._update(key, change, now) for key, change in changes.items()]
        with anyio.CancelScope(shield=carries_settle):
            try:
                await dynamodb.call(
                    self._client.transact_write_items,
                    what="usage write",
                    TransactItems=items,
                    ClientRequestToken=str(uuid.uuid4()),
                )
            except dynamodb.Refused:
                return False
            except Unavailable:
                if carries_settle:
                    logger.error(
                        "quota: SETTLE LOST, usage not recorded (the reservation stays counted): %s",
                        json.dumps(items, default=str),
                    )
                raise
        return True

    async def _read(self, keys: list[Key]) -> dict[Key, int]:
        """The `tokens` of each item (0 where absent), read consistently in one BatchGetItem."""
        request: dict[str, Any] = {
            self._table: {
                "Keys": [usage_key(key) for key in dict.fromkeys(keys)],
                "ProjectionExpression": "pk, sk, #t",
                "ExpressionAttributeNames": {"#t": "tokens"},
                "ConsistentRead": True,
            }
        }
        found: dict[Key, int] = dict.fromkeys(keys, 0)
        for attempt in range(1, dynamodb.RETRY.attempts + 1):
            response = await dynamodb.call(
                self._client.batch_get_item, what="usage read", RequestItems=request
            )
            for item in response.get("Responses", {}).get(self._table, []):
                found[(item["pk"]["S"], item["sk"]["S"])] = int(item.get("tokens", {}).get("N", "0"))
            unprocessed = response.get("UnprocessedKeys") or {}
            if not unprocessed.get(self._table):
                return found
            request = unprocessed
            await dynamodb.RETRY.wait(attempt)
        raise Unavailable("The usage store is busy; please try again shortly.")


def _refusal(room: Room, now: datetime) -> LimitExceeded:
    """The refusal naming the tier with the least room."""
    tier = room.tightest
    return LimitExceeded(
        tier=tier,
        limit=room.limits[tier],
        used=max(0, room.used[tier]),
        resets_at=resets_at(now),
        retry_after=seconds_until_reset(now),
    )


def _merge(first: Changes, second: Changes) -> Changes:
    """Two sets of changes as one, each item updated once."""
    merged = dict(first)
    for key, change in second.items():
        merged[key] = merged[key].plus(change) if key in merged else change
    return merged

"""The three daily token quotas (user, organization, global), kept in DynamoDB with reservations.

Where the counters live is `shards.py`: the user's item, the organization's shards and the global shards of
each UTC day (a new day is a new key, so quotas reset at midnight UTC with no job; `expires_at` lets the
table's TTL drop old days). Each shard refuses a write that would take it past its share of the tier's
limit, and the shares add up to the limit, so no tier's total ever exceeds it.

Before each model call the request reserves (estimated input + the call's `max_tokens`) with one conditional
`UpdateItem` per tier, sent together: the user's item, the organization's shard (the user's home shard
first), the global shard (drawn at random first). No transaction: concurrent transactions on one item
cancel each other, where plain writes to it queue, and a hot global counter would cancel most of them. A
shard that has no room refuses its write alone; the ledger then reads every counter of the day in one batch
and tries that tier's shard with the most room, so a full shard is never a refusal while another has room.
Only when a tier has no shard with room for a useful answer is the call refused; the tiers already held
are then given back (compensated).

After the call the reservation is settled to the actual count (ADD actual - reserved) on the shards it was
held on; settling call N rides in the write that reserves call N+1 on the same shard (the request stays on
its shards while they have room). So a request writes each of its three items once per model call, plus
once at the end: three writes per model call where the first ledger made one three-item transaction, at
the same write units (a transactional write costs twice a plain one).

`UpdateItem` has no idempotency token, so every write carries this request's marker (`~<random>`) in the
item and is conditioned on the marker's previous value: a write retried after a lost reply either applies
(the marker still shows the previous value) or is found already applied (it does not), and never twice.
The marker lives while the request holds tokens on the item and is removed by the request's last write
there. An organization shard also keeps, per user, `u:<user id>` = their packed tokens, requests and tool
calls of the day (the usage report), added in the same writes.

`tokens` counts settled usage plus reservations in flight: a crash between reserve and settle leaves the
reservation in place, which over-counts but never under-counts. Estimates are upper bounds (see
`usage.estimate_input_tokens`) and output can never exceed `max_tokens`, so settling only gives tokens back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import anyio

from . import dynamodb
from .errors import LimitExceeded, Unavailable
from .observability import gauge
from .room import MIN_USEFUL_OUTPUT, TIERS
from .shards import USER_FIGURES, DayKeys, Layouts, pack, share, unpack
from .usage import Usage

logger = logging.getLogger(__name__)

EXPIRY_DAYS = 7
"""Days after its date at which a user or global usage item expires (DynamoDB TTL): they serve that day's
limits and its `GET /api/chatbot/usage` only."""

ORGANIZATION_KEPT_DAYS = 100
"""Days after its date at which an organization shard expires. The usage report reads them (its users'
figures live there) and reaches back this far, today included: a full 92-day report ending any day of the
last week still has its first day."""

MAX_CONDITION_ROUNDS = 12
"""Reserve rounds that may find no room on the shards tried (others took it) before the request is refused."""

GLOBAL_USED_METRIC = "GlobalTierUsedPercent"


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


def usage_key(pk: str, day: str) -> dict[str, Any]:
    """The DynamoDB key of a usage item."""
    return {"pk": {"S": pk}, "sk": {"S": day}}


@dataclass(frozen=True)
class Hold:
    """Tokens one call holds on one item (`pk` of the reservation's day); `mark` is the value this request's
    marker has there after the write that made the hold."""

    tier: str
    pk: str
    amount: int
    mark: int


@dataclass(frozen=True)
class Reservation:
    """Tokens held for one model call on the three tiers of `day`; `max_tokens` is what fitted, `amount` the
    call's reservation (estimated input + `max_tokens`). `holds` says where (and how much: a tier held in an
    earlier round keeps the larger amount of that round), `writer` names the request's marker and `writes`
    counts the request's writes so far (markers take those numbers, so each value is new)."""

    user_id: str
    org_id: str
    day: str
    amount: int
    max_tokens: int
    holds: tuple[Hold, ...] = ()
    writer: str = ""
    writes: int = 0

    def hold(self, tier: str) -> Hold:
        """The hold on `tier`."""
        return next(h for h in self.holds if h.tier == tier)


@dataclass
class _Write:
    """One conditional UpdateItem on one usage item."""

    tier: str
    pk: str
    day: str
    tokens: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    tool_calls: int = 0
    figures_of: str | None = None  # the user whose `u:` figures this write adds to (organization shards)
    cap: int | None = None  # the room check: the item may hold at most this many tokens before the write
    before: int | None = None  # the marker's value the write expects (None: no marker)
    after: int | None = None  # the marker's value the write leaves (None: removed)

    def plus(self, other: _Write) -> _Write:
        """Both writes as one (`self` a settle on the item, `other` the reservation after it)."""
        counters = dict(self.counters)
        for name, value in other.counters.items():
            counters[name] = counters.get(name, 0) + value
        cap = None if other.cap is None else other.cap - self.tokens
        return _Write(
            self.tier,
            self.pk,
            self.day,
            tokens=self.tokens + other.tokens,
            counters=counters,
            requests=self.requests + other.requests,
            tool_calls=self.tool_calls + other.tool_calls,
            figures_of=self.figures_of or other.figures_of,
            cap=cap,
            before=self.before,
            after=other.after,
        )


@dataclass
class _Outcome:
    """What became of one write: applied (with the item's tokens after it), refused for room, or failed."""

    applied: bool = False
    tokens: int = 0
    error: Unavailable | None = None


@dataclass
class DayUsage:
    """One day of an organization: its tokens and requests, and each user's (tokens, requests, tool calls)."""

    date: str
    tokens: int = 0
    requests: int = 0
    users: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def add(self, item: dict[str, Any]) -> None:
        """Count one shard item of the day."""
        self.tokens += max(0, int(item.get("tokens", {}).get("N", "0")))
        self.requests += int(item.get("requests", {}).get("N", "0"))
        for name, value in item.items():
            if name.startswith(USER_FIGURES):
                user_id = name[len(USER_FIGURES) :]
                figures = unpack(int(value["N"]))
                before = self.users.get(user_id, (0, 0, 0))
                self.users[user_id] = (
                    before[0] + figures[0],
                    before[1] + figures[1],
                    before[2] + figures[2],
                )


class QuotaLedger:
    """Daily token quotas on three tiers, with reservations, in the DynamoDB table `table_name`.

    `client` is a boto3 DynamoDB client (created once, shared); its calls run in worker threads.
    `limits` maps each of `user`, `organization`, `global` to its daily limit in tokens; `layouts` says how
    each day's counters are sharded; `rng` draws a request's first global shard.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        limits: dict[str, int],
        clock: Callable[[], datetime] = utc_now,
        layouts: Layouts | None = None,
        rng: random.Random | None = None,
    ) -> None:
        missing = [tier for tier in TIERS if tier not in limits]
        if missing:
            raise ValueError(f"limits lack the tiers {missing}")
        self._client = client
        self._table = table_name
        self._limits = {tier: int(limits[tier]) for tier in TIERS}
        self._clock = clock
        self._layouts = layouts or Layouts()
        self._rng = rng or random.Random()

    @property
    def limits(self) -> dict[str, int]:
        """Each tier's daily limit."""
        return dict(self._limits)

    @property
    def table(self) -> str:
        """The usage table's name."""
        return self._table

    def today(self) -> date:
        """Today's UTC date, by the ledger's clock."""
        return _utc(self._clock()).date()

    def keys(self, user_id: str, org_id: str, day: str) -> DayKeys:
        """Every counter item of `user_id` in `org_id` on `day`, in that day's layout."""
        return DayKeys(day, self._layouts.on(date.fromisoformat(day)), user_id, org_id)

    def share(self, keys: DayKeys, tier: str, pk: str) -> int:
        """The share of `tier`'s limit that the shard `pk` may hold."""
        shards = keys.shards(tier)
        return share(self._limits[tier], len(shards), shards.index(pk))

    async def reserve(
        self,
        user_id: str,
        org_id: str,
        *,
        estimated_input: int,
        max_tokens: int,
        first: bool,
        settle: tuple[Reservation, Usage] | None = None,
        tool_calls: int = 0,
    ) -> Reservation:
        """Hold room for one model call on all three tiers, lowering `max_tokens` to what is left.

        `first=True` also counts a request on each tier. `settle` settles the previous call of the same
        request in the same writes; `tool_calls` adds the tool calls that ran since to the user's figures.
        Raises `LimitExceeded` when less than `estimated_input` + a useful output is left on some tier (any
        `settle` is still recorded first), `Unavailable` when the table cannot be reached (the holds of this
        call are then given back as far as possible; the `settle` may be sent again, it applies once).
        """
        # Longer than the rest on purpose: one loop of rounds (write the tiers not held yet; on a refusal
        # read every counter once and move to the roomiest shards) whose state (held, targets, room left,
        # settles still pending) is shared by every step; split up, each piece would take and return all of
        # it. The simulation (bench/simulation.py) and tests/chatbot/test_quota.py exercise every branch.
        if estimated_input < 0 or max_tokens < 1:
            raise ValueError("estimated_input must be >= 0 and max_tokens >= 1")
        now = self._clock()
        day = _utc(now).date().isoformat()
        keys = self.keys(user_id, org_id, day)
        previous = settle[0] if settle else None
        writer = previous.writer if previous else "~" + secrets.token_urlsafe(6)
        writes = previous.writes if previous else 0
        pending = self._settle_writes(*settle) if settle else {}
        targets = self._first_targets(keys, previous)
        held: dict[str, Hold] = {}
        # Per tier, the room of its target shard: at most its share before anything is read, then as read.
        left = {tier: self.share(keys, tier, pk) for tier, pk in targets.items()}
        used: dict[str, int] = {}
        for _ in range(MAX_CONDITION_ROUNDS):
            # A tier held in an earlier round holds only that round's amount: the call may never grow past
            # it, or its settle would take that shard past its share.
            room = min([left[t] for t in TIERS if t not in held] + [h.amount for h in held.values()])
            fits = min(max_tokens, room - estimated_input)
            if fits < min(MIN_USEFUL_OUTPUT, max_tokens):
                break
            amount = estimated_input + fits
            batch: dict[str, _Write] = {}
            for tier in TIERS:
                if tier in held:
                    continue
                writes += 1
                reserving = self._reserve_write(keys, tier, targets[tier], amount, first, writes)
                if tier == "organization":
                    reserving.tool_calls = tool_calls
                settling = pending.get(tier)
                if settling is not None and settling.pk == reserving.pk and settling.day == day:
                    reserving = settling.plus(reserving)
                batch[tier] = reserving
            outcomes = await self._apply_all(list(batch.values()), writer, now)
            for (tier, write), outcome in zip(batch.items(), outcomes, strict=True):
                if outcome.applied:
                    held[tier] = Hold(tier, write.pk, amount, writes_of(write))
                    if tier in pending and pending[tier].pk == write.pk and pending[tier].day == day:
                        del pending[tier]
                    if tier == "organization":
                        tool_calls = 0
                    if tier == "global":
                        gauge(
                            GLOBAL_USED_METRIC,
                            100 * outcome.tokens / max(1, self.share(keys, tier, write.pk)),
                        )
            failed = next((o.error for o in outcomes if o.error is not None), None)
            if failed is not None:
                await self._give_back(held, keys, first, writer, now)
                raise failed
            if len(held) == len(TIERS):
                await self._flush(pending, writer, now)
                if fits < max_tokens:
                    logger.info("quota: max_tokens %d lowered to %d for %s", max_tokens, fits, user_id)
                return Reservation(
                    user_id, org_id, day, amount, fits, tuple(held[t] for t in TIERS), writer, writes
                )
            # Some shard had no room: read every counter of the day, move each refused tier to its shard
            # with the most room.
            counted = await self._read(list(keys.all()), day)
            for tier in TIERS:
                shards = keys.shards(tier)
                used[tier] = sum(counted[pk] for pk in shards)
                if tier in held:
                    continue
                rooms = {pk: self.share(keys, tier, pk) - counted[pk] for pk in shards}
                settling = pending.get(tier)
                if settling is not None and settling.day == day and settling.pk in rooms:
                    rooms[settling.pk] -= settling.tokens
                    used[tier] += settling.tokens
                targets[tier] = max(shards, key=lambda pk: (rooms[pk], pk == targets[tier]))
                left[tier] = rooms[targets[tier]]
            # The exact sum over the shards, since it was read anyway.
            gauge(GLOBAL_USED_METRIC, 100 * used["global"] / max(1, self._limits["global"]))
        else:
            logger.warning("quota: gave up reserving for %s after %d rounds", user_id, MAX_CONDITION_ROUNDS)
        if not used:  # refused before anything was read: the refusal still tells what is used
            counted = await self._read(list(keys.all()), day)
            used = {tier: sum(counted[pk] for pk in keys.shards(tier)) for tier in TIERS}
        refusal = _refusal(self._limits, used, {t: room for t, room in left.items() if t not in held}, now)
        await self._give_back(held, keys, first, writer, now)
        await self._flush(pending, writer, now)
        raise refusal

    async def settle(self, reservation: Reservation, usage: Usage, *, tool_calls: int = 0) -> None:
        """Replace a reservation by the call's actual usage on the items it was held on (of its day), and
        add `tool_calls` to the user's figures; the request's last write on those items.

        Never silently dropped: retried under throttling and lost replies (each item applied once), then
        `Unavailable` is raised and the lost settle is logged as an error (the reservation then stays,
        over-counting). Sending it again after a failure applies what was not applied, once.
        """
        writes = self._settle_writes(reservation, usage, tool_calls)
        await self._flush(writes, reservation.writer, self._clock())

    async def report(self, user_id: str, org_id: str) -> dict[str, Any]:
        """Today's usage per tier (each the sum of its shards, read in one batch): the body of
        `GET /api/chatbot/usage`. `used` includes reservations of calls in flight, which is what the limits
        are checked against."""
        now = self._clock()
        day = _utc(now).date().isoformat()
        keys = self.keys(user_id, org_id, day)
        counted = await self._read(list(keys.all()), day)
        return {
            "date": day,
            "resets_at": resets_at(now),
            "tiers": {
                tier: {
                    "used": max(0, sum(counted[pk] for pk in keys.shards(tier))),
                    "limit": self._limits[tier],
                }
                for tier in TIERS
            },
        }

    async def organization_days(self, org_id: str, first: date, last: date) -> list[DayUsage]:
        """The organization's usage on each day from `first` to `last`, with each user's figures: every shard
        of every day (in that day's layout) read in ceil(shards x days / 100) BatchGetItem calls sent
        together, no query or scan. Days the first ledger wrote have totals but no per-user figures."""
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        keys = [
            usage_key(pk, day.isoformat())
            for day in days
            for pk in self.keys("", org_id, day.isoformat()).shards("organization")
        ]
        items = await dynamodb.batch_get(self._client, self._table, keys, what="usage report read")
        found = {day.isoformat(): DayUsage(day.isoformat()) for day in days}
        for item in items:
            found[item["sk"]["S"]].add(item)
        return list(found.values())

    # ---------------------------------------------------------------- writes

    def _first_targets(self, keys: DayKeys, previous: Reservation | None) -> dict[str, str]:
        """Where each tier is tried first: where the previous call held it (one write settles and reserves),
        else the user's item, their home organization shard, a random global shard."""
        if previous is not None and previous.day == keys.day:
            return {hold.tier: hold.pk for hold in previous.holds}
        return {
            "user": keys.user,
            "organization": keys.org(keys.home_org_shard),
            "global": keys.glob(self._rng.randrange(keys.layout.global_shards)),
        }

    def _reserve_write(
        self, keys: DayKeys, tier: str, pk: str, amount: int, first: bool, mark: int
    ) -> _Write:
        return _Write(
            tier,
            pk,
            keys.day,
            tokens=amount,
            requests=1 if first else 0,
            figures_of=keys.user_id if tier == "organization" else None,
            cap=self.share(keys, tier, pk) - amount,
            after=mark,
        )

    def _settle_writes(
        self, reservation: Reservation, usage: Usage, tool_calls: int = 0
    ) -> dict[str, _Write]:
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
        return {
            hold.tier: _Write(
                hold.tier,
                hold.pk,
                reservation.day,
                tokens=actual - hold.amount,
                counters=usage.as_dict(),
                tool_calls=tool_calls if hold.tier == "organization" else 0,
                figures_of=reservation.user_id if hold.tier == "organization" else None,
                before=hold.mark,
            )
            for hold in reservation.holds
        }

    async def _give_back(
        self, held: dict[str, Hold], keys: DayKeys, first: bool, writer: str, now: datetime
    ) -> None:
        """Undo the holds of a reservation that cannot be completed (best effort: a failure over-counts)."""
        undo = {
            tier: _Write(
                tier,
                hold.pk,
                keys.day,
                tokens=-hold.amount,
                requests=-1 if first else 0,
                figures_of=keys.user_id if tier == "organization" else None,
                before=hold.mark,
            )
            for tier, hold in held.items()
        }
        held.clear()
        with contextlib.suppress(Unavailable):
            await self._flush(undo, writer, now, lost="RESERVATION NOT GIVEN BACK (over-counted)")

    async def _flush(
        self, writes: dict[str, _Write], writer: str, now: datetime, lost: str = "SETTLE LOST"
    ) -> None:
        """Apply writes that carry no room check (settles, give-backs): each once, shielded from cancellation
        (a client hanging up must not drop usage); one that fails is logged as an error, then `Unavailable`."""
        if not writes:
            return
        with anyio.CancelScope(shield=True):
            outcomes = await self._apply_all(list(writes.values()), writer, now)
        failed = [(w, o.error) for w, o in zip(writes.values(), outcomes, strict=True) if o.error is not None]
        for write, _ in failed:
            logger.error(
                "quota: %s, usage not recorded (the reservation stays counted): %s",
                lost,
                json.dumps(self._update(write, writer, now), default=str),
            )
        if failed:
            raise failed[0][1]  # type: ignore[misc]

    async def _apply_all(self, writes: list[_Write], writer: str, now: datetime) -> list[_Outcome]:
        """The writes sent together. Each runs to its end: none is cancelled half-way by another's failure."""
        outcomes = [_Outcome() for _ in writes]

        async def run(index: int) -> None:
            try:
                outcomes[index] = await self._apply(writes[index], writer, now)
            except Unavailable as error:
                outcomes[index] = _Outcome(error=error)

        if len(writes) == 1:
            await run(0)
            return outcomes
        async with anyio.create_task_group() as group:
            for index in range(len(writes)):
                group.start_soon(run, index)
        return outcomes

    async def _apply(self, write: _Write, writer: str, now: datetime) -> _Outcome:
        """One write, retried by the one policy (safe: the marker condition makes a repeat a no-op)."""
        try:
            response = await dynamodb.call(
                self._client.update_item, what="usage write", **self._update(write, writer, now)
            )
        except dynamodb.Refused as refused:
            old = refused.error.response.get("Item") or {}
            raw = old.get(writer, {}).get("N")
            mark = None if raw is None else int(raw)
            tokens = int(old.get("tokens", {}).get("N", "0"))
            # Our marker moved on from what this write expects: an earlier attempt of it was applied and
            # its reply lost. Otherwise the room check refused it.
            return _Outcome(applied=mark != write.before, tokens=tokens)
        return _Outcome(
            applied=True, tokens=int(response.get("Attributes", {}).get("tokens", {}).get("N", "0"))
        )

    def _update(self, write: _Write, writer: str, now: datetime) -> dict[str, Any]:
        kept = ORGANIZATION_KEPT_DAYS if write.tier == "organization" else EXPIRY_DAYS
        expires = datetime.combine(date.fromisoformat(write.day) + timedelta(days=kept), time(0), tzinfo=UTC)
        names = {"#t": "tokens", "#u": "updated_at", "#e": "expires_at", "#m": writer}
        values: dict[str, Any] = {
            ":t": {"N": str(write.tokens)},
            ":u": {"S": _utc(now).isoformat()},
            ":e": {"N": str(int(expires.timestamp()))},
        }
        sets = ["#u = :u", "#e = :e"]
        adds = ["#t :t"]
        for i, (name, value) in enumerate(sorted(write.counters.items())):
            names[f"#c{i}"] = name
            values[f":c{i}"] = {"N": str(value)}
            adds.append(f"#c{i} :c{i}")
        if write.requests:
            names["#r"] = "requests"
            values[":r"] = {"N": str(write.requests)}
            adds.append("#r :r")
        if write.figures_of is not None:
            figures = pack(write.tokens, write.requests, write.tool_calls)
            if figures:
                names["#f"] = USER_FIGURES + write.figures_of
                values[":f"] = {"N": str(figures)}
                adds.append("#f :f")
        expression = "SET " + ", ".join(sets)
        conditions = []
        if write.before is None:
            conditions.append("attribute_not_exists(#m)")
        else:
            values[":mb"] = {"N": str(write.before)}
            conditions.append("#m = :mb")
        if write.after is not None:
            values[":ma"] = {"N": str(write.after)}
            expression += ", #m = :ma"
        expression += " ADD " + ", ".join(adds)
        if write.after is None:
            expression += " REMOVE #m"
        if write.cap is not None:
            values[":cap"] = {"N": str(write.cap)}
            conditions.append("(attribute_not_exists(#t) OR #t <= :cap)")
        return {
            "TableName": self._table,
            "Key": usage_key(write.pk, write.day),
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValues": "UPDATED_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }

    # ---------------------------------------------------------------- reads

    async def _read(self, pks: list[str], day: str) -> dict[str, int]:
        """The `tokens` of each item of `day` (0 where absent), read consistently in one batch."""
        items = await dynamodb.batch_get(
            self._client,
            self._table,
            [usage_key(pk, day) for pk in dict.fromkeys(pks)],
            what="usage read",
            consistent=True,
            projection="pk, #t",
            names={"#t": "tokens"},
        )
        found = dict.fromkeys(pks, 0)
        for item in items:
            found[item["pk"]["S"]] = int(item.get("tokens", {}).get("N", "0"))
        return found


def writes_of(write: _Write) -> int:
    """The marker value a reserving write leaves."""
    assert write.after is not None
    return write.after


def _refusal(
    limits: dict[str, int], used: dict[str, int], left: dict[str, int], now: datetime
) -> LimitExceeded:
    """The refusal naming the refused tier whose best shard has the least room (the first in `TIERS` on a
    tie), with the tier's total."""
    candidates = [t for t in TIERS if t in left] or list(TIERS)
    tier = min(candidates, key=lambda t: left.get(t, 0))
    return LimitExceeded(
        tier=tier,
        limit=limits[tier],
        used=max(0, used.get(tier, limits[tier])),
        resets_at=resets_at(now),
        retry_after=seconds_until_reset(now),
    )

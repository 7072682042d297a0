"""Where the quota counters live: the items of each tier on a day, split into shards, and the share of the
tier's limit each shard may hold. Pure: no I/O.

A tier's daily total is the sum of its shards' `tokens`; each shard refuses a reservation that would take it
past its share, and the shares add up to the tier's limit, so the sum never exceeds the limit.

- user: one item `user#<id>` (one request per user at a time, so never hot);
- organization: `org#<id>` when it has one shard, else `org#<id>#<k>`; a user's home shard is
  hash(user) mod k, so each shard item also carries the figures of its own users (the usage report);
- global: `global` when it has one shard, else `global#<k>`; a request starts on a shard drawn at random.

The shard counts of a day are fixed for that whole day (`Layouts`): a new layout takes effect from the UTC
day its entry names, and days before the first entry use the unsharded keys the first ledger wrote. So
neither a change of shard counts nor a rolling deploy (old instances on the old layout, new ones on the
new) can have two layouts counting the same day: both read the same history, and an operator dates a new
entry at least one day ahead (the README says so).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

MAX_DAY_KEYS = 1000
"""Today's user item and every shard of its organization and of the global tier are read in one batched
read (100-key BatchGetItem calls sent together): at most ten calls."""

_ENTRY = re.compile(r"^(\d{4}-\d{2}-\d{2}):(\d+)/(\d+)$")


@dataclass(frozen=True)
class Layout:
    """The shard counts of one day."""

    global_shards: int = 1
    org_shards: int = 1


UNSHARDED = Layout(1, 1)
"""The layout of the first ledger: one item per tier."""


def share(limit: int, shards: int, index: int) -> int:
    """Shard `index`'s share of `limit` split `shards` ways (the remainder goes to the first shards)."""
    return limit // shards + (1 if index < limit % shards else 0)


def home(user_id: str, shards: int) -> int:
    """The organization shard that `user_id` writes first: a stable hash, the same in every process."""
    digest = hashlib.blake2b(user_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


USER_FIGURES = "u:"
"""Prefix of the attribute an organization shard item keeps per user: `u:<user id>`."""

_REQUESTS = 2**40
_TOOL_CALLS = 2**60


def pack(tokens: int, requests: int, tool_calls: int) -> int:
    """A user's figures as one number, so a shard item spends one attribute (and one ADD) per user:
    tokens + requests * 2^40 + tool_calls * 2^60. ADDing packed deltas adds each figure, because each stays
    inside its own range (a day's tokens of one user under 2^40, requests under 2^20); DynamoDB numbers
    keep 38 digits, and a packed figure needs at most 26."""
    return tokens + requests * _REQUESTS + tool_calls * _TOOL_CALLS


def unpack(value: int) -> tuple[int, int, int]:
    """The (tokens, requests, tool_calls) of a packed figure."""
    tool_calls, rest = divmod(value, _TOOL_CALLS)
    requests, tokens = divmod(rest, _REQUESTS)
    return tokens, requests, tool_calls


def user_key(user_id: str) -> str:
    """The partition key of a user's daily item."""
    return f"user#{user_id}"


def org_key(org_id: str, shards: int, index: int) -> str:
    """The partition key of shard `index` of an organization's daily counter."""
    return f"org#{org_id}" if shards == 1 else f"org#{org_id}#{index}"


def global_key(shards: int, index: int) -> str:
    """The partition key of shard `index` of the global daily counter."""
    return "global" if shards == 1 else f"global#{index}"


@dataclass(frozen=True)
class Layouts:
    """The history of layouts: each entry applies from its UTC day until the next entry's day."""

    entries: tuple[tuple[date, Layout], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Layouts:
        """`CHATBOT_QUOTA_SHARDS`: comma-separated `YYYY-MM-DD:<global shards>/<organization shards>`, in
        increasing date order; empty means unsharded on every day. Raises ValueError with what is wrong."""
        entries: list[tuple[date, Layout]] = []
        for raw in (part.strip() for part in text.split(",")):
            if not raw:
                continue
            match = _ENTRY.match(raw)
            if match is None:
                raise ValueError(f"{raw!r} is not YYYY-MM-DD:<global shards>/<organization shards>")
            day = date.fromisoformat(match.group(1))
            layout = Layout(int(match.group(2)), int(match.group(3)))
            if min(layout.global_shards, layout.org_shards) < 1:
                raise ValueError(f"{raw!r}: shard counts start at 1")
            if 1 + layout.global_shards + layout.org_shards > MAX_DAY_KEYS:
                raise ValueError(
                    f"{raw!r}: 1 + global + organization shards must be at most {MAX_DAY_KEYS} "
                    "(today's counters are read in one batched read)"
                )
            if entries and day <= entries[-1][0]:
                raise ValueError(f"{raw!r}: entries must be in increasing date order")
            entries.append((day, layout))
        return cls(tuple(entries))

    def on(self, day: date) -> Layout:
        """The layout of `day`."""
        found = UNSHARDED
        for since, layout in self.entries:
            if since > day:
                break
            found = layout
        return found


@dataclass(frozen=True)
class DayKeys:
    """Every counter item of one user's request on one day, with each shard's share of its tier's limit."""

    day: str
    layout: Layout
    user_id: str
    org_id: str

    @property
    def user(self) -> str:
        """The user's item."""
        return user_key(self.user_id)

    @property
    def home_org_shard(self) -> int:
        """The organization shard this user writes first (and where their report figures usually are)."""
        return home(self.user_id, self.layout.org_shards)

    def org(self, index: int) -> str:
        """The organization's shard `index`."""
        return org_key(self.org_id, self.layout.org_shards, index)

    def glob(self, index: int) -> str:
        """The global tier's shard `index`."""
        return global_key(self.layout.global_shards, index)

    def shards(self, tier: str) -> list[str]:
        """Every item of `tier`, by shard index."""
        if tier == "user":
            return [self.user]
        if tier == "organization":
            return [self.org(k) for k in range(self.layout.org_shards)]
        return [self.glob(k) for k in range(self.layout.global_shards)]

    def all(self) -> Iterator[str]:
        """Every item of the three tiers (what one batched read of today's usage reads)."""
        for tier in ("user", "organization", "global"):
            yield from self.shards(tier)

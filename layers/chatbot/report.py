"""The organization's usage report (`GET /api/chatbot/usage/report`): the range checked, the ledger's
organization shards read for every day of it, and the days and users assembled. Who may see it is checked
by the endpoint (`usage:read`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from .appdata import AppData
from .errors import InvalidRequest
from .permissions import Caller
from .quota import ORGANIZATION_KEPT_DAYS, QuotaLedger

MAX_DAYS = 92
"""The longest range a report covers, both ends included."""

DEFAULT_DAYS = 30
"""The range when `from` is left out: the 30 days ending with `to` (today by default)."""

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Range:
    """The days a report covers, both ends included."""

    first: date
    last: date


def _date(name: str, raw: str) -> date:
    if not _DATE.match(raw):
        raise InvalidRequest(f"{name}: a date written YYYY-MM-DD.")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: {raw} is not a date.") from None


def parse_range(query: dict[str, str], today: date) -> Range:
    """`from` and `to` of the query (400 naming the field when malformed, reversed, too long, or reaching
    back before the oldest day the ledger keeps)."""
    last = _date("to", query["to"]) if "to" in query else today
    first = _date("from", query["from"]) if "from" in query else last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise InvalidRequest("from: must not be after to.")
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidRequest(f"from: the range is at most {MAX_DAYS} days, both ends included.")
    # Older days have expired (or soon will): refused, rather than shown as days nobody used it.
    earliest = today - timedelta(days=ORGANIZATION_KEPT_DAYS - 1)
    if first < earliest:
        raise InvalidRequest(
            f"from: usage is kept {ORGANIZATION_KEPT_DAYS} days; the earliest day is {earliest.isoformat()}."
        )
    return Range(first, last)


async def organization_report(
    ledger: QuotaLedger, appdata: AppData, caller: Caller, span: Range
) -> dict[str, Any]:
    """The report of the caller's organization over `span`: every day (zero where nothing was used), and
    every user with usage, most tokens first, named from the application's members."""
    days = await ledger.organization_days(caller.org_id, span.first, span.last)
    totals: dict[str, list[int]] = {}
    for day in days:
        for user_id, figures in day.users.items():
            total = totals.setdefault(user_id, [0, 0, 0])
            for i, value in enumerate(figures):
                total[i] += value
    names = (
        {member.user_id: member.name for member in await appdata.list_members(caller.org_id)}
        if totals
        else {}
    )
    users: list[dict[str, Any]] = [
        {"user_id": user_id, "name": names.get(user_id, ""), "tokens": t, "requests": r, "tool_calls": c}
        for user_id, (t, r, c) in totals.items()
    ]
    users.sort(key=lambda u: (-u["tokens"], u["user_id"]))
    return {
        "organization": {"id": caller.org_id, "name": caller.org_name},
        "from": span.first.isoformat(),
        "to": span.last.isoformat(),
        "days": [{"date": d.date, "tokens": d.tokens, "requests": d.requests} for d in days],
        "users": users,
    }

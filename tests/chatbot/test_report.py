"""The usage report's reach: the organization's figures outlive the daily counters for as long as the
report reaches back, and a range starting before that is refused naming `from`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from chatbot.appdata import AppData
from chatbot.errors import InvalidRequest
from chatbot.permissions import Caller
from chatbot.quota import QuotaLedger
from chatbot.report import MAX_DAYS, Range, organization_report, parse_range
from chatbot.shards import Layouts
from chatbot.usage import Usage

from tests.fakes.dynamodb import USAGE_TABLE

LIMITS = {"user": 50_000, "organization": 1_000_000, "global": 1_000_000}
FIRST = date(2026, 3, 2)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def expire(client: Any, now: datetime) -> int:
    """Delete what DynamoDB's TTL may have deleted by `now` (items whose `expires_at` has passed)."""
    gone = 0
    for item in client.scan(TableName=USAGE_TABLE)["Items"]:
        if int(item.get("expires_at", {}).get("N", "0")) <= now.timestamp():
            client.delete_item(TableName=USAGE_TABLE, Key={"pk": item["pk"], "sk": item["sk"]})
            gone += 1
    return gone


@pytest.mark.parametrize("shards", ["", "2020-01-01:3/2"], ids=["one-item-per-tier", "sharded"])
async def test_a_full_length_report_still_has_its_first_day_once_the_daily_counters_expired(
    dynamodb: Any, appdata: AppData, shards: str
) -> None:
    clock = Clock(datetime.combine(FIRST, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9))
    ledger = QuotaLedger(dynamodb, USAGE_TABLE, LIMITS, clock=clock, layouts=Layouts.parse(shards))
    reservation = await ledger.reserve(
        "user_bob", "org_acme", estimated_input=500, max_tokens=1000, first=True
    )
    await ledger.settle(reservation, Usage(400, 200), tool_calls=2)

    last = FIRST + timedelta(days=MAX_DAYS - 1)
    clock.now = datetime.combine(last, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
    assert expire(dynamodb, clock.now) > 0  # the user's and the global counters of that day are gone
    span = parse_range({"from": FIRST.isoformat(), "to": last.isoformat()}, ledger.today())
    body = await organization_report(ledger, appdata, Caller("user_alice", "org_acme", "admin"), span)

    assert body["days"][0] == {"date": FIRST.isoformat(), "tokens": 600, "requests": 1}
    assert body["users"] == [
        {"user_id": "user_bob", "name": "Bob Brown", "tokens": 600, "requests": 1, "tool_calls": 2}
    ]


def test_a_range_starting_before_the_oldest_day_kept_is_refused_naming_from_and_that_day() -> None:
    today = date(2026, 11, 27)
    kept = parse_range({"from": "2026-08-20", "to": "2026-09-30"}, today)  # 100 days, today included
    assert kept == Range(date(2026, 8, 20), date(2026, 9, 30))

    with pytest.raises(InvalidRequest) as refused:
        parse_range({"from": "2026-08-19", "to": "2026-09-30"}, today)
    assert str(refused.value) == "from: usage is kept 100 days; the earliest day is 2026-08-20."

"""The organization's usage report over HTTP: its numbers are the usage events of the requests made, it
shows only the caller's organization, only to owners and admins, and refuses bad ranges naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.e2e.sse import Stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall


def counted(stream: Stream) -> int:
    return sum(
        e["input_tokens"]
        + e["output_tokens"]
        + e["cache_creation_input_tokens"]
        + e["cache_read_input_tokens"]
        for e in stream.of("usage")
    )


async def report(server: LiveServer, user: str = "user_alice", org: str = "org_acme", **params: str) -> Any:
    async with server.client() as client:
        return await client.get(
            "/api/chatbot/usage/report", headers=server.auth(user=user, org=org), params=params
        )


@pytest.fixture
def sharded(start_server: ServerFactory) -> LiveServer:
    """A server whose counters have been sharded (3 global, 2 organization shards) since long ago."""
    return start_server(chatbot_quota_shards="2020-01-01:3/2")


async def test_the_report_counts_exactly_the_usage_events_requests_and_tool_calls_of_each_user(
    sharded: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_uses(ToolCall("member_list", {}), ToolCall("organization_get", {})), Reply.text("Two.")
    )
    alice = [await sharded.message("who is here?")]
    fake_anthropic.enqueue(Reply.text("Hello again."))
    alice.append(await sharded.message("hi"))
    fake_anthropic.enqueue(
        Reply.tool_uses(ToolCall("member_remove", {"user_id": "user_alice"})), Reply.text("No.")
    )
    bob = await sharded.message("remove alice", user="user_bob")  # refused: not permitted, did not run
    fake_anthropic.enqueue(Reply.text("Globex here."))
    await sharded.message("hello", user="user_carol", org="org_globex")

    today = datetime.now(UTC).date()
    response = await report(
        sharded, **{"from": (today - timedelta(days=6)).isoformat(), "to": today.isoformat()}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["organization"] == {"id": "org_acme", "name": "Acme Inc"}
    assert (body["from"], body["to"]) == ((today - timedelta(days=6)).isoformat(), today.isoformat())
    assert [d["date"] for d in body["days"]] == [
        (today - timedelta(days=6 - i)).isoformat() for i in range(7)
    ]
    alice_tokens, bob_tokens = sum(counted(s) for s in alice), counted(bob)
    assert body["days"][-1] == {"date": today.isoformat(), "tokens": alice_tokens + bob_tokens, "requests": 3}
    assert all(d["tokens"] == 0 and d["requests"] == 0 for d in body["days"][:-1])
    assert body["users"] == sorted(
        [
            {
                "user_id": "user_alice",
                "name": "Alice Anders",
                "tokens": alice_tokens,
                "requests": 2,
                "tool_calls": 2,
            },
            {
                "user_id": "user_bob",
                "name": "Bob Brown",
                "tokens": bob_tokens,
                "requests": 1,
                "tool_calls": 0,
            },
        ],
        key=lambda u: -u["tokens"],
    )

    globex = (await report(sharded, user="user_carol", org="org_globex")).json()
    assert globex["organization"]["id"] == "org_globex"
    assert [u["user_id"] for u in globex["users"]] == ["user_carol"]
    assert globex["days"][-1]["requests"] == 1 and len(globex["days"]) == 30


async def test_only_owners_and_admins_may_read_it(server: LiveServer) -> None:
    for user in ("user_bob", "user_erin"):
        refused = await report(server, user=user)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    assert (await report(server, user="user_carol", org="org_globex")).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2025-06-10", "to": "2025-06-01"}, "from"),
        ({"from": "2025-01-01", "to": "2025-04-03"}, "from"),
        ({"from": "2025-02-30", "to": "2025-03-01"}, "from"),
        ({"from": "2025-06-01", "to": "20250602"}, "to"),
        ({"from": "yesterday", "to": "2025-06-02"}, "from"),
    ],
    ids=["reversed", "93-days", "no-such-date", "compact-date", "words"],
)
async def test_bad_ranges_and_dates_are_a_400_naming_the_field(
    server: LiveServer, params: dict[str, str], field: str
) -> None:
    response = await report(server, **params)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["message"].startswith(f"{field}:")


async def test_a_92_day_range_is_accepted(server: LiveServer) -> None:
    today = datetime.now(UTC).date()
    response = await report(
        server, **{"from": (today - timedelta(days=91)).isoformat(), "to": today.isoformat()}
    )

    assert response.status_code == 200 and len(response.json()["days"]) == 92


async def test_a_range_reaching_back_before_the_oldest_day_kept_is_a_400_naming_from(
    server: LiveServer,
) -> None:
    today = datetime.now(UTC).date()
    response = await report(
        server,
        **{"from": (today - timedelta(days=120)).isoformat(), "to": (today - timedelta(days=90)).isoformat()},
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith("from: usage is kept 100 days; the earliest day is ")

"""The daily quotas under concurrency and DynamoDB faults, through the real HTTP API: dozens of users of
one organization racing for its last tokens never take a tier past its limit, and the stored totals are
exactly the sum of the `usage` events the clients received (nothing lost, nothing counted twice)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest

from tests.e2e.conftest import ServerFactory
from tests.e2e.sse import Stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply, tool_results
from tests.reliability.support import (
    CONFLICT,
    LOST_REPLY,
    THROTTLE,
    DynamoDBServer,
    counted,
    random_faults,
    seed_members,
    stored_tier,
    stored_usage,
    tier_tokens,
)

ORG_LIMIT = 60_000
RACE_TIMEOUT = 120.0
"""Each request's bound in the races. The test store answers one DynamoDB call at a time (moto is not
atomic), ~7 ms each, and nearly all of a race's time is spent queued there: with 80 users at once a request
took up to ~20 s end to end on an idle machine (median 6 s, measured), which says nothing of the app. The
default 30 s between bytes was once too little in a soak run (httpx ReadTimeout)."""


def responder(request: dict[str, Any]) -> Reply:
    """Every other user's first call uses a tool, so settles also ride on the next call's reservation."""
    if tool_results(request):
        return Reply.text("Here they are.", chunks=2)
    text = request["messages"][-1]["content"][0]["text"]
    if text.endswith("tool"):
        return Reply.tool_use("member_list", {"role": "admin"}, text_before="Checking.")
    return Reply.text("A short answer for you.", chunks=3)


async def race_for_the_org_limit(
    server: Any, users: list[str], rounds: int, dynamodb: DynamoDBServer
) -> tuple[dict[str, list[Stream]], list[int]]:
    """Each user sends `rounds` messages one after another, all users at once; samples the org total."""
    settings = server.settings
    streams: dict[str, list[Stream]] = defaultdict(list)
    samples: list[int] = []
    done = asyncio.Event()

    async def user_loop(index: int, user: str) -> None:
        for turn in range(rounds):
            text = f"question {turn}" + (" tool" if index % 2 else "")
            streams[user].append(
                await server.message(text, token=server.token(user), io_timeout=RACE_TIMEOUT)
            )

    async def sample() -> None:
        while not done.is_set():
            tokens = await asyncio.to_thread(
                tier_tokens, dynamodb.endpoint, settings.chatbot_usage_table, "org#org_acme"
            )
            samples.append(tokens)
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    await asyncio.gather(*(user_loop(i, u) for i, u in enumerate(users)))
    done.set()
    await sampler
    return streams, samples


def check_totals(server: Any, dynamodb: DynamoDBServer, streams: dict[str, list[Stream]]) -> dict[str, int]:
    settings = server.settings
    table = settings.chatbot_usage_table
    outcomes: dict[str, int] = defaultdict(int)
    org_sum = 0
    for user, user_streams in streams.items():
        user_sum = 0
        for stream in user_streams:
            if stream.status == 200:
                outcomes[stream.last.get("code") or stream.last["stop_reason"]] += 1
                user_sum += sum(counted(e) for e in stream.of("usage"))
            else:
                assert stream.status == 429 and stream.error_body is not None, stream
                assert stream.error_body["error"] == "limit_exceeded"
                assert stream.error_body["tier"] == "organization"
                outcomes["refused 429"] += 1
        stored = stored_usage(dynamodb.endpoint, table, f"user#{user}")
        assert stored.get("tokens", 0) == user_sum, user
        org_sum += user_sum
    org = stored_tier(dynamodb.endpoint, table, "org#org_acme")
    assert org["tokens"] == org_sum
    assert stored_tier(dynamodb.endpoint, table, "global")["tokens"] == org_sum
    assert org["tokens"] <= ORG_LIMIT
    admitted = sum(1 for s in (x for v in streams.values() for x in v) if s.status == 200)
    assert org["requests"] == admitted
    return dict(outcomes)


SHARDED = "2020-01-01:3/4"  # sharded since long ago: 3 global shards, 4 organization shards


@pytest.mark.parametrize(
    ("user_count", "rounds", "shards"),
    [
        pytest.param(30, 3, "", id="30x3"),
        pytest.param(30, 3, SHARDED, id="30x3-sharded"),
        pytest.param(80, 5, SHARDED, id="80x5-sharded", marks=pytest.mark.soak),
    ],
)
async def test_dozens_of_users_near_the_org_limit_never_exceed_it_and_totals_equal_the_usage_events(
    start_server: ServerFactory,
    fake_anthropic: FakeAnthropic,
    dynamodb_server: DynamoDBServer,
    user_count: int,
    rounds: int,
    shards: str,
) -> None:
    server = start_server(
        chatbot_daily_token_limit_organization=ORG_LIMIT, chatbot_max_tokens=1024, chatbot_quota_shards=shards
    )
    users = seed_members(dynamodb_server.endpoint, server.settings.app_table, "org_acme", user_count)
    fake_anthropic.set_responder(responder)

    streams, samples = await race_for_the_org_limit(server, users, rounds, dynamodb_server)

    assert max(samples) <= ORG_LIMIT
    outcomes = check_totals(server, dynamodb_server, streams)
    assert outcomes.get("refused 429", 0) > 0, "the race should reach the organization's limit"
    assert outcomes.get("end_turn", 0) > 0
    print(f"\n{user_count} users x {rounds}: {outcomes}; org peak {max(samples)} / {ORG_LIMIT}")


async def test_throttling_conflicts_and_lost_replies_are_retried_and_never_lose_or_double_usage(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, dynamodb_server: DynamoDBServer
) -> None:
    server = start_server(
        chatbot_daily_token_limit_organization=ORG_LIMIT,
        chatbot_max_tokens=1024,
        chatbot_quota_shards=SHARDED,
    )
    users = seed_members(dynamodb_server.endpoint, server.settings.app_table, "org_acme", 20)
    fake_anthropic.set_responder(responder)
    # One call in five fails: each kind is met dozens of times, while all ten attempts of one call failing
    # (0.2^10, about 1e-7 a call) never decides the run. At 0.4 (the first rates) that was about 1e-4 a
    # call, a few percent a run, and such a request ends, correctly, with `unavailable`.
    injector = random_faults(
        {
            "UpdateItem": {THROTTLE: 0.08, CONFLICT: 0.06, LOST_REPLY: 0.06},
            "BatchGetItem": {THROTTLE: 0.2},
        }
    )
    with dynamodb_server.faults(injector) as faults:
        streams, _ = await race_for_the_org_limit(server, users, 2, dynamodb_server)

    assert faults.total(THROTTLE) > 0 and faults.total(CONFLICT) > 0 and faults.total(LOST_REPLY) > 0
    for stream in (s for v in streams.values() for s in v):
        # Refused cleanly or answered; a usage store that stays down would be a 503, never a 500.
        assert stream.status in (200, 429), stream
        if stream.status == 200:
            assert stream.last["type"] == "done" or stream.last["code"] == "limit_exceeded", stream.last
    outcomes = check_totals(server, dynamodb_server, streams)
    print(f"\nfaults injected {faults.counts}; outcomes {outcomes}")

"""The per-user rate of MCP tool calls: a moving minute, shared through Redis by every instance, in memory
for one process, and refusing (not allowing) calls when its store is unreachable."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from chatbot.errors import RateLimited, Unavailable
from chatbot.ratelimit import CallRate

MakeRate = Callable[[int], CallRate]


@pytest.fixture(params=["memory", "redis"])
async def make_rate(request: pytest.FixtureRequest) -> AsyncIterator[MakeRate]:
    """Rates of one store; with Redis every one made shares one (test-unique) key prefix, like instances."""
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    prefix = f"test:mcp-rate:{uuid.uuid4().hex}"
    made: list[CallRate] = []

    def make(per_minute: int) -> CallRate:
        rate = CallRate(per_minute, url, key_prefix=prefix)
        made.append(rate)
        return rate

    yield make
    for rate in made:
        await rate.aclose()


async def test_a_user_over_the_limit_is_told_when_to_retry(make_rate: MakeRate) -> None:
    rate = make_rate(3)
    for _ in range(3):
        await rate.take("user_alice")
    with pytest.raises(RateLimited) as refused:
        await rate.take("user_alice")
    assert 55 <= refused.value.retry_after <= 60 and refused.value.limit == 3
    assert refused.value.status == 429 and refused.value.headers()["Retry-After"] == str(
        refused.value.retry_after
    )
    assert "retry in" in refused.value.message


async def test_each_user_has_a_count_of_their_own(make_rate: MakeRate) -> None:
    rate = make_rate(1)
    await rate.take("user_alice")
    await rate.take("user_bob")
    with pytest.raises(RateLimited):
        await rate.take("user_alice")


async def test_instances_sharing_redis_share_the_count(redis_url: str) -> None:
    prefix = f"test:mcp-rate:{uuid.uuid4().hex}"
    first, second = CallRate(2, redis_url, key_prefix=prefix), CallRate(2, redis_url, key_prefix=prefix)
    try:
        await first.take("user_alice")
        await second.take("user_alice")
        with pytest.raises(RateLimited):
            await first.take("user_alice")
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_store_refuses_the_call() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket closes
    rate = CallRate(5, f"redis://127.0.0.1:{port}/0", operation_timeout=1, connect_timeout=0.2)
    try:
        with pytest.raises(Unavailable):
            await rate.take("user_alice")
    finally:
        await rate.aclose()

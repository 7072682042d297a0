"""The Redis lock against a real Redis: keys and TTLs, expiry, outages, recovery and the cancel listener."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from chatbot.errors import ConcurrentRequest, Unavailable
from chatbot.lock import Lease, create_lock
from chatbot.lock.redis import RedisRequestLock, cancel_key, lock_key
from redis.asyncio import Redis

from tests.chatbot.lock.conftest import TcpProxy

WAIT = 5.0


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    """A plain client, to look at the keys the lock leaves."""
    client: Redis = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def locks() -> AsyncIterator[list[RedisRequestLock]]:
    """Collects locks a test builds and closes them afterwards."""
    made: list[RedisRequestLock] = []
    yield made
    for lock in made:
        await lock.aclose()


async def acquire_when_free(lock: RedisRequestLock, user_id: str, within: float = WAIT) -> Lease:
    """Poll until the user's lock can be taken (it is expiring on Redis's clock, not ours)."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await lock.acquire(user_id, new_id("req"))
            except ConcurrentRequest:
                await asyncio.sleep(0.02)


async def test_lock_key_holds_the_request_id_with_the_configured_ttl(
    redis_url: str, raw: Redis, locks: list[RedisRequestLock]
) -> None:
    locks.append(lock := RedisRequestLock(redis_url, ttl_seconds=300))
    user, request = new_id("user"), new_id("req")
    await lock.acquire(user, request)
    assert await raw.get(f"chatbot:lock:{user}") == request
    assert 299_000 < await raw.pttl(f"chatbot:lock:{user}") <= 300_000


async def test_lock_expires_by_itself_after_its_ttl(redis_url: str, locks: list[RedisRequestLock]) -> None:
    locks.append(lock := RedisRequestLock(redis_url, ttl_seconds=0.3))
    user = new_id("user")
    await lock.acquire(user, new_id("req"))
    started = time.monotonic()
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, new_id("req"))
    await acquire_when_free(lock, user)
    assert time.monotonic() - started >= 0.25


async def test_stale_lease_after_expiry_and_takeover_does_not_release_the_new_owner(
    redis_url: str, raw: Redis, locks: list[RedisRequestLock]
) -> None:
    locks.append(first := RedisRequestLock(redis_url, ttl_seconds=0.3))
    locks.append(second := RedisRequestLock(redis_url, ttl_seconds=30))
    user = new_id("user")
    stale = await first.acquire(user, new_id("req"))
    owner = await acquire_when_free(second, user)
    await stale.release()
    assert await raw.get(lock_key(user)) == owner.request_id
    with pytest.raises(ConcurrentRequest):
        await second.acquire(user, new_id("req"))


async def test_release_removes_the_cancel_marker(
    redis_url: str, raw: Redis, locks: list[RedisRequestLock]
) -> None:
    locks.append(lock := RedisRequestLock(redis_url, ttl_seconds=30))
    lease = await lock.acquire(new_id("user"), new_id("req"))
    assert await lock.cancel(lease.user_id)
    assert await raw.exists(cancel_key(lease.request_id)) == 1
    await lease.release()
    assert await raw.exists(lock_key(lease.user_id), cancel_key(lease.request_id)) == 0


async def test_acquire_cancelled_while_awaiting_the_reply_leaves_the_user_free(
    redis_proxy: TcpProxy, raw: Redis, locks: list[RedisRequestLock]
) -> None:
    locks.append(lock := RedisRequestLock(f"redis://127.0.0.1:{redis_proxy.port}/0", 30))
    await lock.ping()  # connect first, so the only reply held back below is the acquire's
    user = new_id("user")
    redis_proxy.replies_flowing.clear()
    attempt = asyncio.create_task(lock.acquire(user, new_id("req")))
    await asyncio.wait_for(redis_proxy.reply_held.wait(), WAIT)
    assert await raw.get(lock_key(user)) is not None  # the SET landed; only its reply is missing
    attempt.cancel()
    redis_proxy.replies_flowing.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(attempt, WAIT)
    assert await raw.exists(lock_key(user)) == 0


async def test_unreachable_redis_is_reported_unavailable_at_once(locks: list[RedisRequestLock]) -> None:
    locks.append(lock := RedisRequestLock("redis://127.0.0.1:1/0", ttl_seconds=30))
    async with asyncio.timeout(3):
        with pytest.raises(Unavailable):
            await lock.acquire(new_id("user"), new_id("req"))
        with pytest.raises(Unavailable):
            await lock.cancel(new_id("user"))
        with pytest.raises(Unavailable):
            await lock.ping()


async def test_redis_that_never_answers_is_reported_unavailable_within_the_timeout(
    locks: list[RedisRequestLock],
) -> None:
    silent: list[asyncio.StreamWriter] = []

    async def accept_and_ignore(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)

    server = await asyncio.start_server(accept_and_ignore, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        locks.append(lock := RedisRequestLock(f"redis://127.0.0.1:{port}/0", 30, operation_timeout=0.3))
        async with asyncio.timeout(3):
            with pytest.raises(Unavailable):
                await lock.acquire(new_id("user"), new_id("req"))
            with pytest.raises(Unavailable):
                await lock.ping()
    finally:
        for writer in silent:
            writer.close()
        server.close()


async def test_outage_fails_closed_and_service_resumes_when_redis_is_back(
    redis_proxy: TcpProxy,
    redis_url: str,
    raw: Redis,
    locks: list[RedisRequestLock],
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxied_url = f"redis://127.0.0.1:{redis_proxy.port}/0"
    locks.append(lock := RedisRequestLock(proxied_url, 30, listener_max_backoff=0.2))
    locks.append(elsewhere := RedisRequestLock(redis_url, 30))
    held = await lock.acquire(new_id("user"), new_id("req"))

    await redis_proxy.stop()
    with pytest.raises(Unavailable):
        await lock.acquire(new_id("user"), new_id("req"))
    with caplog.at_level(logging.ERROR, logger="chatbot.lock.redis"):
        await held.release()  # must not raise: the TTL reclaims the key
    assert "expires with its TTL" in caplog.text
    assert 0 < await raw.pttl(lock_key(held.user_id)) <= 30_000

    await redis_proxy.start()
    await lock.ping()
    lease = await lock.acquire(new_id("user"), new_id("req"))
    await asyncio.wait_for(lock.listening.wait(), WAIT)
    assert await elsewhere.cancel(lease.user_id)
    await asyncio.wait_for(lease.cancelled.wait(), WAIT)


async def test_cancel_sent_while_the_listener_is_disconnected_arrives_on_reconnect(
    redis_proxy: TcpProxy, redis_url: str, locks: list[RedisRequestLock]
) -> None:
    locks.append(
        lock := RedisRequestLock(f"redis://127.0.0.1:{redis_proxy.port}/0", 30, listener_max_backoff=0.2)
    )
    locks.append(elsewhere := RedisRequestLock(redis_url, 30))
    lease = await lock.acquire(new_id("user"), new_id("req"))
    await asyncio.wait_for(lock.listening.wait(), WAIT)

    await redis_proxy.stop()  # drops the listener's connection: the publish below cannot reach it
    assert await elsewhere.cancel(lease.user_id)
    assert not lease.cancelled.is_set()

    await redis_proxy.start()
    await asyncio.wait_for(lease.cancelled.wait(), WAIT)


async def test_factory_with_a_url_builds_the_redis_lock_quietly(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatbot.lock"):
        lock = create_lock(redis_url, 30)
    try:
        assert isinstance(lock, RedisRequestLock)
        assert caplog.records == []
        lease = await lock.acquire(new_id("user"), new_id("req"))
        await lease.release()
    finally:
        await lock.aclose()

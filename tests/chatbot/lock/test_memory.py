"""The in-memory lock: its TTL on the monotonic clock, and the factory's one-process warning."""

from __future__ import annotations

import logging
import uuid

import pytest
from chatbot.errors import ConcurrentRequest
from chatbot.lock import create_lock
from chatbot.lock.memory import MemoryRequestLock


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_lock_expires_after_its_ttl() -> None:
    clock = FakeClock()
    lock = MemoryRequestLock(ttl_seconds=300, clock=clock)
    user = new_id("user")
    await lock.acquire(user, new_id("req"))
    clock.now += 299.9
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, new_id("req"))
    clock.now += 0.1
    await lock.acquire(user, new_id("req"))


async def test_stale_lease_after_expiry_and_takeover_does_not_release_the_new_owner() -> None:
    clock = FakeClock()
    lock = MemoryRequestLock(ttl_seconds=10, clock=clock)
    user = new_id("user")
    stale = await lock.acquire(user, new_id("req"))
    clock.now += 10
    await lock.acquire(user, new_id("req"))
    await stale.release()
    with pytest.raises(ConcurrentRequest):
        await lock.acquire(user, new_id("req"))


async def test_cancel_after_expiry_finds_nothing_in_flight() -> None:
    clock = FakeClock()
    lock = MemoryRequestLock(ttl_seconds=10, clock=clock)
    lease = await lock.acquire(new_id("user"), new_id("req"))
    clock.now += 10
    assert await lock.cancel(lease.user_id) is False
    assert not lease.cancelled.is_set()


async def test_factory_without_redis_warns_that_the_lock_guards_one_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatbot.lock"):
        lock = create_lock(None, 300)
    assert isinstance(lock, MemoryRequestLock)
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "one process" in caplog.records[0].getMessage()
    assert "REDIS_URL" in caplog.records[0].getMessage()

"""What every Redis user shares: the pool and the bound on each call."""

from __future__ import annotations

import anyio
import pytest
from chatbot.errors import Unavailable
from chatbot.redis_store import connection_pool, store_call
from redis.asyncio import Redis


async def test_a_call_waiting_for_a_busy_pool_waits_until_its_own_deadline_not_the_connect_timeout(
    redis_url: str,
) -> None:
    # Found under load (300 streams in one process): every pooled connection was in use for longer than the
    # connect timeout, and a lock acquire waiting for one was reported as "Redis unreachable" (a 503).
    pool = connection_pool(redis_url, connect_timeout=0.1, max_connections=1)
    redis: Redis[str] = Redis(connection_pool=pool, decode_responses=True)
    try:
        busy = await pool.get_connection()

        async def give_back_later() -> None:
            await anyio.sleep(0.3)  # busy three times longer than the connect timeout
            await pool.release(busy)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(give_back_later)
            with store_call("ping", 5.0, "test store"):
                assert await redis.ping()
    finally:
        await pool.disconnect()


async def test_a_pool_that_stays_busy_past_the_calls_deadline_is_unavailable(redis_url: str) -> None:
    pool = connection_pool(redis_url, connect_timeout=0.1, max_connections=1)
    redis: Redis[str] = Redis(connection_pool=pool, decode_responses=True)
    try:
        busy = await pool.get_connection()
        with pytest.raises(Unavailable), store_call("ping", 0.3, "test store"):
            await redis.ping()
        await pool.release(busy)
    finally:
        await pool.disconnect()

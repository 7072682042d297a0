"""How many tool calls a user may make through the MCP endpoint: at most `CHATBOT_MCP_CALLS_PER_MINUTE` in any
sliding minute (the `limits` library's moving window), counted in Redis when `REDIS_URL` is set, so every
instance shares one count, and in memory otherwise (one process only).

A store that cannot be reached refuses the call (`Unavailable`): the limit fails closed, like the lock.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from .errors import RateLimited
from .redis_store import connection_pool, store_call

KEY_PREFIX = "chatbot:mcp-rate"
STORE = "MCP call rate store"


class CallRate:
    """Each user's tool calls in the last minute. Create once per process."""

    def __init__(
        self,
        per_minute: int,
        redis_url: str | None = None,
        *,
        key_prefix: str = KEY_PREFIX,
        operation_timeout: float = 2.0,
        connect_timeout: float = 1.0,
    ) -> None:
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute)
        self._timeout = operation_timeout
        self._storage: Storage
        self._pool = None
        if redis_url:
            # The project's pool: every wait bounded, the same reading of "unreachable" as the lock's.
            self._pool = connection_pool(redis_url, connect_timeout=connect_timeout, max_connections=50)
            self._storage = RedisStorage(
                "async+" + redis_url,
                implementation="redispy",
                key_prefix=key_prefix,
                connection_pool=self._pool,  # type: ignore[arg-type]  # limits types options as scalars
            )
        else:
            self._storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def take(self, user_id: str) -> None:
        """Count one call of `user_id`'s, or raise `RateLimited` (saying when a call is allowed again) when
        the last minute already holds `per_minute` of them; `Unavailable` when the store is unreachable."""
        with store_call("count an MCP tool call", self._timeout, STORE):
            if await self._limiter.hit(self._item, user_id):
                return
            stats = await self._limiter.get_window_stats(self._item, user_id)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(self.per_minute, retry_after)

    async def aclose(self) -> None:
        """Release the store's connections."""
        if self._pool is not None:
            await self._pool.disconnect()

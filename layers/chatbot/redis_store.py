"""What every Redis user here shares: a connection pool whose every wait is bounded, and one reading of
"the store cannot serve us now" (which becomes `Unavailable`, a 503)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from chatbot.errors import Unavailable

logger = logging.getLogger(__name__)

# Errors meaning "the store cannot serve us now" (down, unreachable, too slow, failing over, loading),
# as opposed to a programming error, which should surface as one. The builtin TimeoutError is our own
# per-call deadline.
UNREACHABLE: tuple[type[Exception], ...] = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    TimeoutError,
)


@contextmanager
def store_call(action: str, timeout: float, store: str) -> Iterator[None]:
    """Bound a Redis call by `timeout` and report an unreachable store as `Unavailable`, naming `store`."""
    try:
        with anyio.fail_after(timeout):
            yield
    except UNREACHABLE as exc:
        logger.warning("Redis unreachable while trying to %s: %r", action, exc)
        raise Unavailable(f"The {store} (Redis) is unreachable; please try again shortly.") from exc


def connection_pool(
    redis_url: str, *, connect_timeout: float, max_connections: int
) -> BlockingConnectionPool[Connection]:
    """A pool of connections to `redis_url` whose every wait is bounded."""
    return BlockingConnectionPool.from_url(
        redis_url,
        decode_responses=True,
        max_connections=max_connections,
        # Waiting for a free pooled connection is bounded by the caller's operation timeout (`store_call`),
        # not by the connect timeout: a pool busy under load is not an unreachable store.
        timeout=None,
        socket_connect_timeout=connect_timeout,
        # No socket_timeout: with one, redis-py sends through asyncio.wait_for, which on Python 3.11
        # swallows a cancellation that lands as the send completes (tasks then cannot be stopped).
        # Every call is bounded by the caller's operation timeout instead; redis-py drops a connection
        # interrupted mid-command, so a timed-out call never leaves a half-read reply in the pool.
        socket_timeout=None,
        # One immediate retry on a broken connection (a pooled socket Redis closed, or a frozen Lambda
        # thawing) and none on a timeout, so a dead Redis answers `Unavailable` within the timeouts.
        retry=Retry(NoBackoff(), 1, supported_errors=(redis_errors.ConnectionError,)),
        # Idle connections are pinged before reuse, and the listener's connection is pinged regularly.
        health_check_interval=10,
    )

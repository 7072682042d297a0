"""The per-user request lock (one request in flight per user) and the cancel signal that reaches it.

Two implementations: `redis` (shared by every instance; the production one) and `memory` (one process
only, for development). `create_lock` picks one from the configuration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio

logger = logging.getLogger(__name__)

# Release tasks still running after their caller was cancelled natively (task.cancel()); held here so
# the event loop, which keeps only weak references to tasks, does not drop them half-way.
_pending_releases: set[asyncio.Future[None]] = set()


class Lease:
    """Proof that a request holds its user's lock. One per admitted request; give it back with `release`."""

    def __init__(self, user_id: str, request_id: str, releaser: Callable[[Lease], Awaitable[None]]) -> None:
        self.user_id = user_id
        self.request_id = request_id
        self.cancelled = anyio.Event()
        """Set when a cancel (from any instance) targets this request."""
        self._releaser = releaser
        self._release: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"Lease(user_id={self.user_id!r}, request_id={self.request_id!r})"

    async def release(self) -> None:
        """Give the lock back if this lease still owns it. Idempotent; never raises on a store error.

        Runs to completion even while the calling task is being cancelled: shielded against anyio's
        level-triggered cancellation, and run as its own asyncio task (the one place the request path leaves
        anyio) so that a native `task.cancel()`, which uvicorn uses when it shuts down, interrupts only the
        wait, not the release.
        """
        if self._release is None:
            self._release = asyncio.ensure_future(self._releaser(self))
            _pending_releases.add(self._release)
            self._release.add_done_callback(_pending_releases.discard)
        with anyio.CancelScope(shield=True):
            await asyncio.shield(self._release)


class RequestLock(Protocol):
    """At most one request in flight per user, across every instance sharing the store."""

    async def acquire(self, user_id: str, request_id: str) -> Lease:
        """Take the user's lock for this request.

        Raises `ConcurrentRequest` if the user already holds it, `Unavailable` if the store is unreachable.
        """
        ...

    async def cancel(self, user_id: str) -> bool:
        """Signal the user's in-flight request, wherever it runs. True if one was in flight."""
        ...

    async def ping(self) -> None:
        """Check the store; raises `Unavailable` when it is down."""
        ...

    async def aclose(self) -> None:
        """Stop background work and close connections."""
        ...


def create_lock(redis_url: str | None, ttl_seconds: float) -> RequestLock:
    """The Redis lock when `redis_url` is set, else the in-memory one (with a warning: one process only)."""
    if redis_url:
        from chatbot.lock.redis import RedisRequestLock

        return RedisRequestLock(redis_url, ttl_seconds)
    from chatbot.lock.memory import MemoryRequestLock

    logger.warning(
        "REDIS_URL is not set: the per-user request lock and cancel signal are in memory and guard "
        "this one process only; set REDIS_URL when more than one instance can serve requests."
    )
    return MemoryRequestLock(ttl_seconds)


__all__ = ["Lease", "RequestLock", "create_lock"]

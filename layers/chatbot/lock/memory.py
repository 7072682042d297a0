"""The request lock inside one process: for development and single-process runs only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chatbot.errors import ConcurrentRequest
from chatbot.lock import Lease


@dataclass
class _Hold:
    lease: Lease
    expires_at: float


class MemoryRequestLock:
    """Same semantics as the Redis lock (owner-only release, TTL), within a single event loop."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        self._ttl = ttl_seconds
        self._clock = clock
        self._holds: dict[str, _Hold] = {}

    def _current(self, user_id: str) -> _Hold | None:
        hold = self._holds.get(user_id)
        if hold is not None and self._clock() >= hold.expires_at:
            # Expired like a Redis key: the lock is free again, whatever the old holder does.
            del self._holds[user_id]
            return None
        return hold

    async def acquire(self, user_id: str, request_id: str) -> Lease:
        """Take the user's lock; raises `ConcurrentRequest` if it is held and not expired."""
        # No await between the check and the insert: atomic on one event loop.
        if self._current(user_id) is not None:
            raise ConcurrentRequest()
        lease = Lease(user_id, request_id, self._release)
        self._holds[user_id] = _Hold(lease, self._clock() + self._ttl)
        return lease

    async def _release(self, lease: Lease) -> None:
        hold = self._holds.get(lease.user_id)
        if hold is not None and hold.lease.request_id == lease.request_id:
            del self._holds[lease.user_id]

    async def cancel(self, user_id: str) -> bool:
        """Set the in-flight request's `cancelled` event; False when the user has none."""
        hold = self._current(user_id)
        if hold is None:
            return False
        hold.lease.cancelled.set()
        return True

    async def ping(self) -> None:
        """Always healthy: there is no store to reach."""

    async def aclose(self) -> None:
        """Forget every hold."""
        self._holds.clear()

"""Resuming from a Lambda SnapStart snapshot: what the snapshot must not share is renewed before the first
request after a restore.

With SnapStart (template.yaml `EnableSnapStart`), Lambda starts the function once when a version is
published, snapshots the sandbox's memory, and resumes every new sandbox from that snapshot. Everything
in memory is then shared by sandboxes that never met: the random generator's state (so each would draw
the same "random" numbers, e.g. the backoff jitter) and the pooled connections, whose sockets the
endpoints closed long ago although the restored process was never told.

The Lambda Web Adapter release the template uses (v1.0.0-rc1, layer 26) has no hooks to call the app
before the snapshot or after a restore, and the managed runtime's Python hooks do not run in a process the
adapter starts. So the restore is noticed by the app itself: across a restore the wall clock jumps ahead
(it is set to the current time) while the monotonic clock continues from the snapshot, so their
difference moves by the time the snapshot was stored. Within a running sandbox, frozen or not, it does
not move. When it does, the renewals run once: reseed `random`, and drop the idle pooled connections of
the AWS and Anthropic clients so the first request opens fresh ones. (Redis connections are checked by
redis-py itself: a broken pooled connection is retried once on a new one, `redis_store.py`.)

`AWS_LAMBDA_INITIALIZATION_TYPE=snap-start` tells a SnapStart sandbox; elsewhere nothing is watched.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from .observability import logger

JUMP_SECONDS = 2.0
"""How far the wall clock must move against the monotonic clock to count as a restore: far above clock
corrections (NTP slews by milliseconds), far below any snapshot's age."""

Renewal = Callable[[], Awaitable[None]]


def snapstart() -> bool:
    """Whether this sandbox runs under Lambda SnapStart (Lambda says so in the environment)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start"


class RestoreWatch:
    """Notices a restore from a snapshot and renews, once per restore, what the snapshot shared."""

    def __init__(
        self,
        renewals: list[Renewal],
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewals = renewals
        self._wall = wall
        self._monotonic = monotonic
        self._offset = wall() - monotonic()
        self._lock = anyio.Lock()
        self.restores = 0
        """How many restores were noticed (for logs and tests)."""

    def _jumped(self) -> bool:
        return abs(self._wall() - self._monotonic() - self._offset) > JUMP_SECONDS

    async def check(self) -> bool:
        """Renew if the process was restored since the last check; True if it was. Cheap otherwise (two
        clock reads); concurrent callers after a restore wait for the one renewing."""
        if not self._jumped():
            return False
        async with self._lock:
            if not self._jumped():
                return False  # another request renewed meanwhile
            self._offset = self._wall() - self._monotonic()
            random.seed()  # from os.urandom: each restored sandbox draws its own numbers
            for renew in self._renewals:
                await renew()
            self.restores += 1
            logger.info("resumed from a snapshot: random reseeded, pooled connections renewed")
            return True


def aws_client_renewal(client: Any) -> Renewal:
    """Drops the idle pooled connections of a boto3 client; the next call connects afresh. (urllib3 reuses
    a pooled socket unless it saw it closed, and a restored process saw nothing.) Connections in use are
    left alone."""

    async def renew() -> None:
        # botocore's URLLib3Session.close() clears its pool managers, which close their idle connections and
        # are rebuilt on the next request; the client stays usable.
        client._endpoint.http_session.close()

    return renew


def anthropic_renewal(client: Any) -> Renewal:
    """Closes the idle pooled connections of an `anthropic` client (its HTTP transport's pool); the next
    call connects afresh. Connections in use are left alone."""

    async def renew() -> None:
        pool = client._client._transport._pool
        for connection in pool.connections:
            if connection.is_idle():
                await connection.aclose()

    return renew


def restore_watch(dynamodb: Any, anthropic_client: Any | None) -> RestoreWatch:
    """The watch of this process's clients: the DynamoDB client and the Anthropic client if there is one."""
    renewals = [aws_client_renewal(dynamodb)]
    if anthropic_client is not None:
        renewals.append(anthropic_renewal(anthropic_client))
    return RestoreWatch(renewals)


class RestoreMiddleware:
    """Checks for a restore before each request, when the app's lifespan set `state.restore_watch`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch: RestoreWatch | None = (
            getattr(scope["app"].state, "restore_watch", None) if "app" in scope else None
        )
        if watch is not None and scope["type"] == "http":
            await watch.check()
        await self.app(scope, receive, send)

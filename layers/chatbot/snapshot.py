"""Lambda SnapStart: what a snapshot must not share is renewed before the first request after a restore.

With SnapStart (template.yaml `EnableSnapStart`), Lambda starts the function once when a version is
published, snapshots the sandbox's memory, and resumes every new sandbox from that snapshot. Everything
in memory is then shared by sandboxes that never met: the random generator's state (so each would draw
the same "random" numbers, e.g. the backoff jitter) and the pooled connections, whose sockets the
endpoints closed long ago although the restored process was never told.

Two ways in, one renewal:

- **The Web Adapter's hooks** (v1.1.0, layer 30 and later): the adapter POSTs to
  `AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH` before the snapshot (idle pooled connections are closed, so
  none is captured) and to `AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH` after a restore, before any traffic
  (random is reseeded and idle connections dropped again). The adapter refuses both paths to outside
  callers, and the app serves them only when they are configured.
- **Noticing the restore** (older adapter layers, which have no hooks, and as a fallback): across a
  restore the wall clock jumps ahead (it is set to the current time) while the monotonic clock continues
  from the snapshot, so their difference moves by the time the snapshot was stored; within a running
  sandbox, frozen or not, it does not move. A middleware checks before each request.

Renewing drops the idle pooled connections of the AWS and Anthropic clients so the next call connects
afresh. Redis connections are checked by redis-py itself: a broken pooled connection is retried once on
a new one (`redis_store.py`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .observability import logger
from .settings import Settings

JUMP_SECONDS = 2.0
"""How far the wall clock must move against the monotonic clock to count as a restore: far above clock
corrections (NTP slews by milliseconds), far below any snapshot's age."""

Renewal = Callable[[], Awaitable[None]]


class RestoreWatch:
    """Notices a restore from a snapshot and renews, once per restore, what the snapshot shared."""

    def __init__(
        self,
        renewals: list[Renewal],
        *,
        hook_paths: frozenset[str] = frozenset(),
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._renewals = renewals
        self.hook_paths = hook_paths
        """The adapter's hook paths: their requests renew by themselves, without the clock check first."""
        self._wall = wall
        self._monotonic = monotonic
        self._offset = wall() - monotonic()
        self._lock = anyio.Lock()
        self.restores = 0
        """How many restores were noticed (for logs and tests)."""

    def _jumped(self) -> bool:
        return abs(self._wall() - self._monotonic() - self._offset) > JUMP_SECONDS

    async def check(self) -> bool:
        """Renew if the process was restored since the last check or hook; True if it was. Cheap otherwise
        (two clock reads); concurrent callers after a restore wait for the one renewing."""
        if not self._jumped():
            return False
        async with self._lock:
            if not self._jumped():
                return False  # another request renewed meanwhile
            await self._renew()
            return True

    async def before_checkpoint(self) -> None:
        """The adapter's before-checkpoint hook: close idle pooled connections, so the snapshot holds none."""
        async with self._lock:
            for renew in self._renewals:
                await renew()

    async def after_restore(self) -> None:
        """The adapter's after-restore hook: renew before any request is let in."""
        async with self._lock:
            await self._renew()

    async def _renew(self) -> None:
        self._offset = self._wall() - self._monotonic()
        random.seed()  # from os.urandom: each restored sandbox draws its own numbers
        for renew in self._renewals:
            await renew()
        self.restores += 1
        logger.info("resumed from a snapshot: random reseeded, pooled connections renewed")


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


def restore_watch(settings: Settings, dynamodb: Any, anthropic_client: Any | None) -> RestoreWatch:
    """The watch of this process's clients: the DynamoDB client and the Anthropic client if there is one."""
    renewals = [aws_client_renewal(dynamodb)]
    if anthropic_client is not None:
        renewals.append(anthropic_renewal(anthropic_client))
    hooks = (settings.aws_lwa_snapstart_before_checkpoint_path, settings.aws_lwa_snapstart_after_restore_path)
    return RestoreWatch(renewals, hook_paths=frozenset(path for path in hooks if path))


async def before_checkpoint(request: Request) -> Response:
    """POST AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH (the adapter, before the snapshot): 204 when done; an
    error answer fails the snapshot rather than capture a process in an unknown state."""
    await _watch_of(request).before_checkpoint()
    return Response(status_code=204)


async def after_restore(request: Request) -> Response:
    """POST AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH (the adapter, after a restore, before traffic): 204."""
    await _watch_of(request).after_restore()
    return Response(status_code=204)


def _watch_of(request: Request) -> RestoreWatch:
    watch: RestoreWatch | None = request.app.state.restore_watch
    assert watch is not None, "hook routes exist only when the settings configure SnapStart"
    return watch


def routes(settings: Settings) -> list[BaseRoute]:
    """The adapter's hook routes, at the paths configured (none when none is)."""
    hooks = [
        (settings.aws_lwa_snapstart_before_checkpoint_path, before_checkpoint),
        (settings.aws_lwa_snapstart_after_restore_path, after_restore),
    ]
    return [Route(path, endpoint, methods=["POST"]) for path, endpoint in hooks if path]


class RestoreMiddleware:
    """Checks for a restore before each request, when the app's lifespan set `state.restore_watch`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watch: RestoreWatch | None = (
            getattr(scope["app"].state, "restore_watch", None) if "app" in scope else None
        )
        if watch is not None and scope["type"] == "http" and scope["path"] not in watch.hook_paths:
            await watch.check()
        await self.app(scope, receive, send)

"""Re-attaching to a request: `GET /api/chatbot/conversations/{id}/stream` follows the journal.

The events kept after the client's last id go out first, then the live ones as the request writes them,
until its final `done` or `error`. A follower that goes away is simply stopped (the request itself runs on
elsewhere). The wait is bounded: a request whose process died never writes its final event, so following
ends once its longest possible life has passed.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .events import KEEP_ALIVE, encode, is_final
from .journal import Entry, Journal


class ReplayStream(Response):
    """The `text/event-stream` of a request's events after `after`, starting with `first`."""

    media_type = "text/event-stream"

    def __init__(
        self,
        journal: Journal,
        request_id: str,
        after: int,
        first: list[Entry],
        *,
        keepalive_seconds: float,
        follow_seconds: float,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._journal, self._request_id, self._after, self._first = journal, request_id, after, first
        self._keepalive_seconds, self._follow_seconds = keepalive_seconds, follow_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as follower:
            follower.start_soon(_stop_on_disconnect, receive, follower.cancel_scope)
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            await self._follow(send)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            follower.cancel_scope.cancel()

    async def _follow(self, send: Send) -> None:
        give_up = time.monotonic() + self._follow_seconds
        entries: list[Entry] | None = self._first
        after = self._after
        while entries is not None:
            if entries:
                await send(_body(b"".join(encode(evt, event_id) for event_id, evt in entries)))
                after = entries[-1][0]
                if is_final(entries[-1][1]):
                    return
            else:
                await send(_body(KEEP_ALIVE))
            if time.monotonic() >= give_up:
                return
            entries = await self._journal.read(self._request_id, after, self._keepalive_seconds)


def _body(chunk: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": True}


async def _stop_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()

"""A strict reader of the chatbot's SSE stream, for tests: every frame must be well formed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class Stream:
    """What one `POST /api/chatbot/message` returned: status, headers, events in order, keep-alives seen."""

    status: int
    headers: httpx.Headers
    events: list[dict[str, Any]] = field(default_factory=list)
    keepalives: int = 0
    error_body: dict[str, Any] | None = None

    def of(self, type_: str) -> list[dict[str, Any]]:
        """The events of one type."""
        return [e for e in self.events if e["type"] == type_]

    @property
    def text(self) -> str:
        """All `text` chunks joined."""
        return "".join(e["text"] for e in self.of("text"))

    @property
    def last(self) -> dict[str, Any]:
        """The final event (`done` or `error`)."""
        return self.events[-1]


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, Any] | None]:
    """Parse SSE frames as they arrive; yields None for a `: keep-alive` comment."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            if frame.startswith(":"):
                assert frame == ": keep-alive", frame
                yield None
                continue
            lines = frame.split("\n")
            assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
            data = json.loads(lines[1][len("data: ") :])
            assert data["type"] == lines[0][len("event: ") :], frame
            yield data
    assert buffer == "", f"stream ended inside a frame: {buffer!r}"


async def read_stream(response: httpx.Response) -> Stream:
    """Read a whole response: an SSE stream (checking it ends with exactly one done/error) or a JSON error."""
    stream = Stream(status=response.status_code, headers=response.headers)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()
        stream.error_body = response.json()
        return stream
    async for item in frames(response):
        if item is None:
            stream.keepalives += 1
        else:
            stream.events.append(item)
    finals = [e for e in stream.events if e["type"] in ("done", "error")]
    assert len(finals) == 1 and stream.events[-1] is finals[0], stream.events
    return stream

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
    ids: list[int] = field(default_factory=list)
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

    @property
    def conversation_id(self) -> str:
        """The id of the conversation the request belongs to (its first event)."""
        first = self.events[0]
        assert first["type"] == "conversation", first
        return str(first["id"])


def parse_frame(frame: str) -> tuple[int, dict[str, Any]]:
    """One SSE frame, strictly: `id: N`, `event: TYPE`, `data: JSON` repeating the type."""
    lines = frame.split("\n")
    assert len(lines) == 3, frame
    assert lines[0].startswith("id: ") and lines[1].startswith("event: ") and lines[2].startswith("data: "), (
        frame
    )
    data = json.loads(lines[2][len("data: ") :])
    assert data["type"] == lines[1][len("event: ") :], frame
    return int(lines[0][len("id: ") :]), data


async def id_frames(response: httpx.Response) -> AsyncIterator[tuple[int, dict[str, Any]] | None]:
    """Parse SSE frames as they arrive, with their ids; yields None for a `: keep-alive` comment."""
    buffer = ""
    async for chunk in response.aiter_text():
        buffer += chunk
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            if frame.startswith(":"):
                assert frame == ": keep-alive", frame
                yield None
                continue
            yield parse_frame(frame)
    assert buffer == "", f"stream ended inside a frame: {buffer!r}"


async def frames(response: httpx.Response) -> AsyncIterator[dict[str, Any] | None]:
    """Parse SSE frames as they arrive; yields None for a `: keep-alive` comment."""
    async for item in id_frames(response):
        yield None if item is None else item[1]


async def read_stream(response: httpx.Response) -> Stream:
    """Read a whole response: an SSE stream (checking it ends with exactly one done/error) or a JSON error."""
    stream = Stream(status=response.status_code, headers=response.headers)
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        await response.aread()
        stream.error_body = response.json()
        return stream
    async for item in id_frames(response):
        if item is None:
            stream.keepalives += 1
        else:
            stream.ids.append(item[0])
            stream.events.append(item[1])
    finals = [e for e in stream.events if e["type"] in ("done", "error")]
    assert len(finals) == 1 and stream.events[-1] is finals[0], stream.events
    assert stream.ids == list(range(stream.ids[0], stream.ids[0] + len(stream.ids))), stream.ids
    return stream

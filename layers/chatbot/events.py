"""Server-sent events as DESIGN.md frames them: `event: TYPE`, `data: JSON` repeating `"type"`."""

from __future__ import annotations

import json
from typing import Any, Literal

EventType = Literal["text", "tool_use", "tool_result", "usage", "done", "error"]
StopReason = Literal["end_turn", "max_tokens", "max_iterations", "cancelled"]

KEEP_ALIVE = b": keep-alive\n\n"


def event(type_: EventType, **data: Any) -> dict[str, Any]:
    """An event as a dict, `type` first (the order the stream writes it)."""
    return {"type": type_, **data}


def encode(evt: dict[str, Any]) -> bytes:
    """Frame one event for the wire. JSON keeps non-ASCII text as is (the stream is UTF-8)."""
    data = json.dumps(evt, ensure_ascii=False, separators=(",", ":"))
    return f"event: {evt['type']}\ndata: {data}\n\n".encode()

"""Server-sent events as the stream frames them: `event: TYPE`, `data: JSON` repeating `"type"`."""

from __future__ import annotations

import json
from typing import Any, Literal

EventType = Literal[
    "conversation", "text", "tool_use", "tool_result", "approval_required", "usage", "done", "error"
]
StopReason = Literal["end_turn", "max_tokens", "max_iterations", "cancelled", "approval_required"]
Event = dict[str, Any]
"""An event as a dict, `type` first (the order the stream writes it)."""

KEEP_ALIVE = b": keep-alive\n\n"


def event(type_: EventType, **data: Any) -> Event:
    """An event of `type_` with `data`."""
    return {"type": type_, **data}


def is_final(evt: Event) -> bool:
    """Whether `evt` ends the stream (`done` or `error`)."""
    return evt["type"] in ("done", "error")


def encode(evt: Event, event_id: int) -> bytes:
    """Frame one event for the wire, with its id. Never fails: JSON keeps non-ASCII text as is (the stream
    is UTF-8), except in an event holding a lone surrogate, which UTF-8 cannot carry: that one is written
    all-ASCII, the surrogate as a `\\ud800` escape (valid JSON, which the browser's parser reads)."""
    data = json.dumps(evt, ensure_ascii=False, separators=(",", ":"))
    try:
        return f"id: {event_id}\nevent: {evt['type']}\ndata: {data}\n\n".encode()
    except UnicodeEncodeError:
        data = json.dumps(evt, separators=(",", ":"))
        return f"id: {event_id}\nevent: {evt['type']}\ndata: {data}\n\n".encode()

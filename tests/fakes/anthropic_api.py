"""A local fake of the Anthropic Messages API that speaks the real wire protocol.

It runs a real HTTP server (uvicorn, in a background thread, on 127.0.0.1 and an ephemeral port), so the
real ``anthropic`` SDK, ``httpx`` or a browser can talk to it and streaming is real streaming::

    with FakeAnthropic() as fake:
        fake.enqueue(Reply.tool_use("member_list", {"role": "admin"}, text_before="Let me check."))
        fake.enqueue(Reply.text("There is **one** admin."))
        client = anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test")
        ...
        assert fake.message_requests[1].body["messages"][-1]["content"][0]["type"] == "tool_result"

Which reply answers a ``POST /v1/messages``: the oldest queued reply (``enqueue``), else the responder
(``responder=`` / ``set_responder``, a ``Callable[[dict], Reply]`` given the parsed request JSON), else the
default: ``Reply.text(DEFAULT_TEXT)``, a short streamed text reply ending with ``end_turn``.

Usage numbers are deterministic: every prompt part (each tool, each system block, each message content
block) costs ``estimate_tokens(canonical JSON)`` = UTF-8 bytes / 4 rounded up. With ``cache_control``
breakpoints, the prefix up to the last breakpoint is written to an in-memory cache on first sight
(``cache_creation_input_tokens``) and read on later requests sharing a breakpoint prefix
(``cache_read_input_tokens``); ``input_tokens`` is the rest, as in the real API. Output tokens are
``estimate_tokens`` of the emitted text and tool input JSON; a reply longer than the request's
``max_tokens`` is cut and ends with ``stop_reason: "max_tokens"``. ``POST /v1/messages/count_tokens``
uses the same counting.

Run ``python -m tests.fakes.anthropic_api --port 8787`` for a server answering with ``demo_responder``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import re
import secrets
import signal
import socket
import string
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import anthropic

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Responder = Callable[[JSON], "Reply"]
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RECORDED_STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-streams"
"""Real Anthropic streams recorded from the live API (a copy of shared/fixtures/anthropic-streams)."""

DEFAULT_TEXT = "Hello from the fake Anthropic API."
"""The text of the reply sent when nothing is queued and no responder is installed."""

FaultKind = Literal["stream_error", "reset", "close", "hang", "truncate", "malformed"]

_BASE62 = string.ascii_letters + string.digits
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_MAX_CACHE_BREAKPOINTS = 4


def _random_id(prefix: str) -> str:
    return prefix + "01" + "".join(secrets.choice(_BASE62) for _ in range(22))


def _dumps(value: Any) -> str:
    """Compact JSON, as the real API writes its event data (a lone surrogate, which UTF-8 cannot carry, as
    a `\\ud800` escape, as JSON allows)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


def estimate_tokens(text: str) -> int:
    """The fake's token count of a string: UTF-8 bytes / 4, rounded up (0 for the empty string)."""
    return (len(text.encode("utf-8", "surrogatepass")) + 3) // 4


# --------------------------------------------------------------------------------------------------------
# Request helpers (handy in responders)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def last_user_text(request: Mapping[str, Any]) -> str:
    """The text of the last user message that has any text (tool results are skipped)."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            text = _text_of(message.get("content"))
            if text:
                return text
    return ""


def tool_results(request: Mapping[str, Any]) -> list[JSON]:
    """The ``tool_result`` blocks of the request's last message (empty if it carries none)."""
    messages = request.get("messages") or []
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return []
    content = messages[-1].get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]


def tool_names(request: Mapping[str, Any]) -> list[str]:
    """The names of the tools offered in the request, in order."""
    return [str(t.get("name")) for t in request.get("tools") or [] if isinstance(t, dict)]


def tool_result_text(block: Mapping[str, Any]) -> str:
    """The text content of a ``tool_result`` block (string content or its text blocks joined)."""
    return _text_of(block.get("content"))


# --------------------------------------------------------------------------------------------------------
# Replies


@dataclass(frozen=True)
class Text:
    """A text content block of a scripted reply; ``chunks`` = number of ``text_delta`` events."""

    text: str
    chunks: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool_use content block of a scripted reply.

    ``raw_json`` (when set) is streamed instead of ``json.dumps(input)``: use it to send input that is
    not valid JSON. ``json_chunks`` = number of non-empty ``input_json_delta`` pieces.
    """

    name: str
    input: JSON = field(default_factory=dict)
    id: str | None = None
    json_chunks: int = 3
    raw_json: str | None = None


Block = Text | ToolCall


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event as written on the wire: ``event: <event>\\ndata: <data>\\n\\n``."""

    event: str
    data: str

    def encode(self) -> bytes:
        return f"event: {self.event}\ndata: {self.data}\n\n".encode()


@dataclass(frozen=True)
class Fault:
    """What goes wrong in a stream after ``after_events`` events have been sent."""

    kind: FaultKind
    after_events: int | None
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    data: str = ""


@dataclass(frozen=True)
class HttpError:
    """An HTTP error answer (before any stream), in the API's error shape."""

    status: int
    type: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Reply:
    """What the fake answers to one ``POST /v1/messages``. Build with the class methods.

    ``delay`` is slept between stream events, ``latency`` before the response starts (both stop early if
    the client goes away).
    """

    blocks: tuple[Block, ...] = ()
    stop_reason: str | None = None
    recorded: tuple[SseEvent, ...] | None = None
    error: HttpError | None = None
    fault: Fault | None = None
    delay: float = 0.0
    latency: float = 0.0
    model: str | None = None
    pings: bool = True

    # -- normal replies ---------------------------------------------------------------------------------

    @classmethod
    def text(
        cls,
        text: str,
        *,
        chunks: int | None = None,
        stop_reason: str = "end_turn",
        delay: float = 0.0,
        model: str | None = None,
    ) -> Reply:
        """A text reply; ``chunks`` splits it into that many deltas (default: about three words each)."""
        return cls(blocks=(Text(text, chunks),), stop_reason=stop_reason, delay=delay, model=model)

    @classmethod
    def tool_use(
        cls,
        name: str,
        input: JSON | None = None,
        *,
        text_before: str | None = None,
        id: str | None = None,
        json_chunks: int = 3,
        delay: float = 0.0,
    ) -> Reply:
        """A reply calling one tool (optionally after some text), ending with ``stop_reason: tool_use``."""
        return cls.tool_uses(
            ToolCall(name, dict(input or {}), id=id, json_chunks=json_chunks),
            text_before=text_before,
            delay=delay,
        )

    @classmethod
    def tool_uses(
        cls,
        *calls: ToolCall | tuple[str, JSON],
        text_before: str | None = None,
        delay: float = 0.0,
    ) -> Reply:
        """A reply calling several tools at once: ``Reply.tool_uses(("a", {}), ToolCall("b", {"x": 1}))``."""
        blocks: list[Block] = [Text(text_before)] if text_before else []
        for call in calls:
            blocks.append(call if isinstance(call, ToolCall) else ToolCall(call[0], dict(call[1])))
        return cls(blocks=tuple(blocks), stop_reason="tool_use", delay=delay)

    @classmethod
    def message(cls, *blocks: Block | str, stop_reason: str | None = None, delay: float = 0.0) -> Reply:
        """Any sequence of blocks (a ``str`` is a ``Text``); stop_reason defaults from the last block."""
        built = tuple(Text(b) if isinstance(b, str) else b for b in blocks)
        if stop_reason is None:
            stop_reason = "tool_use" if any(isinstance(b, ToolCall) for b in built) else "end_turn"
        return cls(blocks=built, stop_reason=stop_reason, delay=delay)

    @classmethod
    def tool_use_invalid_json(
        cls, name: str = "member_list", raw_json: str = '{"role": adm!n}', *, text_before: str | None = None
    ) -> Reply:
        """A tool call whose streamed input pieces do not join into valid JSON."""
        return cls.tool_uses(ToolCall(name, raw_json=raw_json), text_before=text_before)

    @classmethod
    def replay(cls, path: str | Path, *, delay: float = 0.0) -> Reply:
        """Replay a recorded stream (one event's JSON data per line) verbatim."""
        events: list[SseEvent] = []
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                kind = json.loads(line)["type"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not an event with a type: {line!r}") from exc
            events.append(SseEvent(str(kind), line))
        return cls(recorded=tuple(events), delay=delay)

    # -- HTTP errors ------------------------------------------------------------------------------------

    @classmethod
    def http_error(
        cls,
        status: int,
        type: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        *,
        retry_after: float | None = None,
    ) -> Reply:
        """An error answer before any stream: ``{"type":"error","error":{"type":..,"message":..}}``.

        ``retry_after`` (seconds) sets ``retry-after`` (whole seconds, as the API does) and
        ``retry-after-ms`` (which the SDK prefers, so retries in tests can be fast).
        """
        all_headers = dict(headers or {})
        if retry_after is not None:
            all_headers.setdefault("retry-after", str(math.ceil(retry_after)))
            all_headers.setdefault("retry-after-ms", str(round(retry_after * 1000)))
        return cls(error=HttpError(status, type, message, tuple(all_headers.items())))

    @classmethod
    def rate_limited(cls, *, retry_after: float = 1.0) -> Reply:
        """429 ``rate_limit_error`` with retry-after headers."""
        return cls.http_error(
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50,000 input tokens per "
            "minute. Please reduce the prompt length or the maximum tokens requested, or try again later.",
            retry_after=retry_after,
        )

    @classmethod
    def overloaded(cls, *, retry_after: float | None = None) -> Reply:
        """529 ``overloaded_error``."""
        return cls.http_error(529, "overloaded_error", "Overloaded", retry_after=retry_after)

    @classmethod
    def server_error(cls, *, retry_after: float | None = None) -> Reply:
        """500 ``api_error``."""
        return cls.http_error(500, "api_error", "Internal server error", retry_after=retry_after)

    # -- faults in the stream ---------------------------------------------------------------------------

    @classmethod
    def stream_error(
        cls,
        *,
        after_events: int = 2,
        type: str = "overloaded_error",
        message: str = "Overloaded",
        reply: Reply | None = None,
    ) -> Reply:
        """After ``after_events`` events, an SSE ``event: error`` and the end of the response."""
        return cls._faulted(reply, Fault("stream_error", after_events, error_type=type, message=message))

    @classmethod
    def reset(cls, *, after_events: int = 2, reply: Reply | None = None) -> Reply:
        """After ``after_events`` events, drop the TCP connection with an RST (unread data may be lost)."""
        return cls._faulted(reply, Fault("reset", after_events))

    @classmethod
    def closed(cls, *, after_events: int = 2, reply: Reply | None = None) -> Reply:
        """After ``after_events`` events, close the connection (FIN) without ending the chunked body."""
        return cls._faulted(reply, Fault("close", after_events))

    @classmethod
    def hang(cls, *, after_events: int = 2, reply: Reply | None = None) -> Reply:
        """After ``after_events`` events, send nothing more until the client disconnects."""
        return cls._faulted(reply, Fault("hang", after_events))

    @classmethod
    def truncated(cls, *, after_events: int | None = None, reply: Reply | None = None) -> Reply:
        """End the response cleanly after ``after_events`` events (default: all but ``message_stop``)."""
        return cls._faulted(reply, Fault("truncate", after_events))

    @classmethod
    def malformed(
        cls,
        *,
        after_events: int = 2,
        data: str = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":',
        reply: Reply | None = None,
    ) -> Reply:
        """After ``after_events`` events, a ``content_block_delta`` event whose data is not JSON; the rest
        of the stream follows."""
        return cls._faulted(reply, Fault("malformed", after_events, data=data))

    @classmethod
    def _faulted(cls, reply: Reply | None, fault: Fault) -> Reply:
        base = reply if reply is not None else cls.text(DEFAULT_TEXT)
        if base.error is not None:
            raise ValueError("an HTTP error reply has no stream to break")
        return dataclasses.replace(base, fault=fault)

    # -- modifiers --------------------------------------------------------------------------------------

    def with_delay(self, per_event: float, *, latency: float = 0.0) -> Reply:
        """The same reply, sleeping ``per_event`` s between events and ``latency`` s before starting."""
        return dataclasses.replace(self, delay=per_event, latency=latency)


# --------------------------------------------------------------------------------------------------------
# Token accounting


@dataclass(frozen=True)
class _Segment:
    tokens: int
    digest: str
    breakpoint: bool


def _without_cache_control(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_without_cache_control(v) for v in value]
    return value


def _prompt_parts(request: Mapping[str, Any]) -> list[tuple[str, Any, bool]]:
    """The prompt in cache order (tools, system, messages): (label, content, has_breakpoint)."""
    parts: list[tuple[str, Any, bool]] = []
    for tool in request.get("tools") or []:
        parts.append(("tool", tool, isinstance(tool, dict) and "cache_control" in tool))
    system = request.get("system")
    if isinstance(system, str) and system:
        parts.append(("system", system, False))
    elif isinstance(system, list):
        for block in system:
            parts.append(("system", block, isinstance(block, dict) and "cache_control" in block))
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role"))
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                parts.append((role, block, isinstance(block, dict) and "cache_control" in block))
        else:
            parts.append((role, content, False))
    return parts


def _segments(request: Mapping[str, Any]) -> list[_Segment]:
    running = hashlib.sha256()
    segments = []
    for label, content, breakpoint in _prompt_parts(request):
        canonical = json.dumps(_without_cache_control(content), sort_keys=True, ensure_ascii=False)
        running.update(f"{label}\0{canonical}\0".encode())
        segments.append(_Segment(max(1, estimate_tokens(canonical)), running.hexdigest(), breakpoint))
    return segments


def count_request_tokens(request: Mapping[str, Any]) -> int:
    """All input tokens of a request (what ``count_tokens`` answers; = input + cache creation + read)."""
    return max(1, sum(s.tokens for s in _segments(request)))


@dataclass(frozen=True)
class PromptUsage:
    """The input side of a call's usage."""

    input_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int


class PromptCache:
    """A deterministic model of prompt caching: prefixes up to breakpoints, created then read."""

    def __init__(self, min_tokens: int = 0) -> None:
        self.min_tokens = min_tokens
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._known.clear()

    def usage_for(self, request: Mapping[str, Any]) -> PromptUsage:
        """Split the request's input tokens into uncached, cache-written and cache-read; remember it."""
        segments = _segments(request)
        total = max(1, sum(s.tokens for s in segments))
        prefix_tokens: list[int] = []
        running = 0
        for s in segments:
            running += s.tokens
            prefix_tokens.append(running)
        breakpoints = [
            i for i, s in enumerate(segments) if s.breakpoint and prefix_tokens[i] >= self.min_tokens
        ]
        if not breakpoints:
            return PromptUsage(total, 0, 0)
        with self._lock:
            read = max(
                (prefix_tokens[i] for i in breakpoints if segments[i].digest in self._known),
                default=0,
            )
            self._known.update(segments[i].digest for i in breakpoints)
        created = prefix_tokens[breakpoints[-1]] - read
        return PromptUsage(total - read - created, created, read)


# --------------------------------------------------------------------------------------------------------
# Rendering a reply into events


def _split_even(text: str, pieces: int) -> list[str]:
    pieces = max(1, min(pieces, len(text)))
    size, extra = divmod(len(text), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


def split_text(text: str, chunks: int | None = None) -> list[str]:
    """The text deltas of a text block: ``chunks`` even pieces, or by default about three words each."""
    if not text:
        return []
    if chunks is not None:
        return _split_even(text, chunks)
    words = re.findall(r"\s*\S+\s*|\s+", text)
    return ["".join(words[i : i + 3]) for i in range(0, len(words), 3)]


def _block_output_tokens(block: Block) -> int:
    if isinstance(block, Text):
        return estimate_tokens(block.text)
    body = block.raw_json if block.raw_json is not None else json.dumps(block.input, ensure_ascii=False)
    return estimate_tokens(block.name) + estimate_tokens(body)


def _fit_to_max_tokens(blocks: Sequence[Block], max_tokens: int) -> tuple[list[Block], bool]:
    """Cut the blocks to ``max_tokens`` output tokens; True when something was cut."""
    kept: list[Block] = []
    budget = max_tokens
    for block in blocks:
        cost = _block_output_tokens(block)
        if cost <= budget:
            kept.append(block)
            budget -= cost
            continue
        if isinstance(block, Text) and budget > 0:
            kept.append(Text(block.text.encode()[: budget * 4].decode(errors="ignore"), block.chunks))
        return kept, True
    return kept, False


@dataclass
class _Rendered:
    events: list[SseEvent]
    message: JSON | None
    usage_by_event: dict[int, JSON]


def _usage_json(prompt: PromptUsage, output_tokens: int) -> JSON:
    return {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_creation_input_tokens,
        "cache_read_input_tokens": prompt.cache_read_input_tokens,
        "output_tokens": output_tokens,
    }


def _render_blocks(reply: Reply, request: Mapping[str, Any], prompt: PromptUsage) -> _Rendered:
    blocks = list(reply.blocks)
    stop_reason = reply.stop_reason or "end_turn"
    max_tokens = request.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        blocks, cut = _fit_to_max_tokens(blocks, max_tokens)
        if cut:
            stop_reason = "max_tokens"
    output_tokens = max(1, sum(_block_output_tokens(b) for b in blocks))
    model = reply.model or str(request.get("model") or "claude-haiku-4-5")
    message_id = _random_id("msg_")
    start_usage = {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_creation_input_tokens,
        "cache_read_input_tokens": prompt.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": prompt.cache_creation_input_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": 1,
        "service_tier": "standard",
    }
    shell: JSON = {
        "model": model,
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": start_usage,
    }
    events = [SseEvent("message_start", _dumps({"type": "message_start", "message": shell}))]
    usage_by_event: dict[int, JSON] = {0: _usage_json(prompt, 1)}
    final_content: list[JSON] = []
    ping = SseEvent("ping", _dumps({"type": "ping"}))
    for index, block in enumerate(blocks):
        start: JSON
        if isinstance(block, Text):
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block.text, block.chunks)]
            final_content.append({"type": "text", "text": block.text})
        else:
            tool_id = block.id or _random_id("toolu_")
            start = {"type": "tool_use", "id": tool_id, "name": block.name, "input": {}}
            raw = (
                block.raw_json if block.raw_json is not None else json.dumps(block.input, ensure_ascii=False)
            )
            # The API always opens a tool input with an empty partial_json; "{}" arrives as only that.
            pieces = [""] + ([] if raw == "{}" else _split_even(raw, block.json_chunks))
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
            final_content.append(
                {"type": "tool_use", "id": tool_id, "name": block.name, "input": block.input}
            )
        events.append(
            SseEvent(
                "content_block_start",
                _dumps({"type": "content_block_start", "index": index, "content_block": start}),
            )
        )
        if reply.pings and index == 0:
            events.append(ping)
        for delta in deltas:
            events.append(
                SseEvent(
                    "content_block_delta",
                    _dumps({"type": "content_block_delta", "index": index, "delta": delta}),
                )
            )
        events.append(SseEvent("content_block_stop", _dumps({"type": "content_block_stop", "index": index})))
        if reply.pings and index < len(blocks) - 1:
            events.append(ping)
    final_usage = _usage_json(prompt, output_tokens)
    usage_by_event[len(events)] = final_usage
    events.append(
        SseEvent(
            "message_delta",
            _dumps(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": final_usage,
                }
            ),
        )
    )
    events.append(SseEvent("message_stop", _dumps({"type": "message_stop"})))
    message = {
        **shell,
        "content": final_content,
        "stop_reason": stop_reason,
        "usage": {**start_usage, "output_tokens": output_tokens},
    }
    return _Rendered(events, message, usage_by_event)


def accumulate(events: Iterable[SseEvent]) -> JSON | None:
    """The final message a stream of events describes (None without a ``message_start``)."""
    message: JSON | None = None
    buffers: dict[int, str] = {}
    for event in events:
        data = json.loads(event.data)
        kind = data.get("type")
        if kind == "message_start":
            message = dict(data["message"])
            message["content"] = []
        elif message is None:
            continue
        elif kind == "content_block_start":
            message["content"].append(dict(data["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][data["index"]], data["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                buffers[data["index"]] = buffers.get(data["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and data["index"] in buffers:
            raw = buffers.pop(data["index"])
            message["content"][data["index"]]["input"] = json.loads(raw) if raw else {}
        elif kind == "message_delta":
            message.update(data["delta"])
            message["usage"] = {**message["usage"], **data.get("usage", {})}
    return message


def _render(reply: Reply, request: Mapping[str, Any], cache: PromptCache) -> _Rendered:
    if reply.recorded is not None:
        events = list(reply.recorded)
        usage_by_event: dict[int, JSON] = {}
        for i, event in enumerate(events):
            data = json.loads(event.data)
            usage = data.get("usage") or (data.get("message") or {}).get("usage")
            if isinstance(usage, dict):
                usage_by_event[i] = usage
        return _Rendered(events, accumulate(events), usage_by_event)
    return _render_blocks(reply, request, cache.usage_for(request))


# --------------------------------------------------------------------------------------------------------
# Request validation (a subset of the real API's checks, with its wording)


class _InvalidRequest(Exception):
    pass


def _validate_blocks(message: Mapping[str, Any]) -> None:
    content = message.get("content")
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text" and not block.get("text"):
                raise _InvalidRequest("messages: text content blocks must be non-empty")


def _validate(request: Any, *, count_only: bool) -> None:
    if not isinstance(request, dict):
        raise _InvalidRequest("Request body must be a JSON object")
    if not isinstance(request.get("model"), str) or not request["model"]:
        raise _InvalidRequest("model: Field required")
    if not count_only:
        max_tokens = request.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise _InvalidRequest("max_tokens: Field required")
        if max_tokens < 1:
            raise _InvalidRequest("max_tokens: Input should be greater than or equal to 1")
        if "stream" in request and not isinstance(request["stream"], bool):
            raise _InvalidRequest("stream: Input should be a valid boolean")
    messages = request.get("messages")
    if not isinstance(messages, list):
        raise _InvalidRequest("messages: Field required")
    if not messages:
        raise _InvalidRequest("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        is_final_assistant = i == len(messages) - 1 and message["role"] == "assistant"
        if not content and not is_final_assistant:
            raise _InvalidRequest(
                f"messages.{i}: all messages must have non-empty content except for the optional final "
                "assistant message"
            )
        _validate_blocks(message)
    _validate_tool_pairing(messages)
    names: set[str] = set()
    for i, tool in enumerate(request.get("tools") or []):
        if not isinstance(tool, dict) or not _TOOL_NAME.match(str(tool.get("name", ""))):
            raise _InvalidRequest(
                f"tools.{i}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        if tool.get("type", "custom") == "custom":
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise _InvalidRequest(f"tools.{i}.custom.input_schema.type: Input should be 'object'")
        if tool["name"] in names:
            raise _InvalidRequest("tools: Tool names must be unique.")
        names.add(tool["name"])
    breakpoints = sum(1 for _, _, bp in _prompt_parts(request) if bp)
    if breakpoints > _MAX_CACHE_BREAKPOINTS:
        raise _InvalidRequest(
            f"A maximum of {_MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}."
        )


def _tool_use_ids(message: Any) -> list[str]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [str(b.get("id")) for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]


def _validate_tool_pairing(messages: list[Any]) -> None:
    for i, message in enumerate(messages):
        if message["role"] == "assistant" and i + 1 < len(messages):
            answered = {str(b.get("tool_use_id")) for b in tool_results({"messages": [messages[i + 1]]})}
            missing = [t for t in _tool_use_ids(message) if t not in answered]
            if missing:
                raise _InvalidRequest(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` "
                    "block in the next message."
                )
        if message["role"] == "user" and isinstance(message.get("content"), list):
            offered = set(_tool_use_ids(messages[i - 1])) if i > 0 else set()
            for j, block in enumerate(message["content"]):
                is_result = isinstance(block, dict) and block.get("type") == "tool_result"
                if is_result and block.get("tool_use_id") not in offered:
                    raise _InvalidRequest(
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )


# --------------------------------------------------------------------------------------------------------
# Records


@dataclass
class RecordedRequest:
    """One request the fake received, and what became of it (updated live by the server thread)."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: JSON | None
    status: int | None = None
    reply: Reply | None = None
    events_sent: int = 0
    usage: JSON | None = None
    """The last usage the client was sent (message_start's, then message_delta's; a JSON reply's)."""
    completed: bool = False
    """The whole response was sent."""
    disconnected: bool = False
    """The client went away before the response was complete."""
    finished: threading.Event = field(default_factory=threading.Event, repr=False)
    """Set when the server is done with the request, whatever the outcome."""

    @property
    def streamed(self) -> bool:
        return bool(self.body and self.body.get("stream") is True)

    def wait_finished(self, timeout: float = 5.0) -> None:
        """Block until the server is done with this request."""
        if not self.finished.wait(timeout):
            raise TimeoutError(f"request {self.index} ({self.path}) still running after {timeout} s")


# --------------------------------------------------------------------------------------------------------
# The server


def _tracking_protocol(transports: dict[tuple[str, int], asyncio.Transport]) -> type[H11Protocol]:
    """An h11 protocol that lets the app find a request's transport (to abort it with an RST)."""

    class TrackingH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if self.client is not None:
                transports[self.client] = transport

        def connection_lost(self, exc: Exception | None) -> None:
            if self.client is not None:
                transports.pop(self.client, None)
            super().connection_lost(exc)

    return TrackingH11Protocol


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class _Exchange:
    """One request/response on the server side: sending, and noticing the client leave."""

    def __init__(self, fake: FakeAnthropic, send: Send, record: RecordedRequest, stop: asyncio.Event) -> None:
        self.fake = fake
        self.send = send
        self.record = record
        self.stop = stop
        self.gone = asyncio.Event()
        self.server_closed = False
        self.request_id = _random_id("req_")

    async def watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.record.completed and not self.server_closed:
            self.fake._update(self.record, disconnected=True)
        self.gone.set()

    async def pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False if the client left or the server is stopping meanwhile."""
        if seconds > 0:
            gone, stop = asyncio.ensure_future(self.gone.wait()), asyncio.ensure_future(self.stop.wait())
            try:
                timeout = None if math.isinf(seconds) else seconds
                await asyncio.wait({gone, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                gone.cancel()
                stop.cancel()
        return not (self.gone.is_set() or self.stop.is_set())

    async def until_gone(self) -> None:
        await self.pause(math.inf)

    async def close_connection(self, transport: asyncio.Transport | None, *, abortive: bool) -> None:
        """Close the connection from the server side (an RST when ``abortive``), and wait until it is."""
        self.server_closed = True
        if transport is None:
            return
        if abortive:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 turns close() into an RST: the client sees "connection reset by peer".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
        # connection_lost runs on a later loop turn; waiting for it lets uvicorn see a disconnect rather
        # than an unfinished response.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gone.wait(), 5.0)

    async def start(self, status: int, content_type: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        headers = [("content-type", content_type), ("request-id", self.request_id), *extra]
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            }
        )
        self.fake._update(self.record, status=status)

    async def body(self, data: bytes, *, last: bool) -> None:
        if last:
            self.fake._update(self.record, completed=True)
        await self.send({"type": "http.response.body", "body": data, "more_body": not last})

    async def json(self, status: int, payload: JSON, extra: Iterable[tuple[str, str]] = ()) -> None:
        await self.start(status, "application/json", extra)
        await self.body(_dumps(payload).encode(), last=True)

    async def api_error(
        self, status: int, kind: str, message: str, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        payload = {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": self.request_id,
        }
        await self.json(status, payload, extra)


_STATUS_OF_ERROR = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class FakeAnthropic:
    """The fake API server. Use as ``with FakeAnthropic() as fake:`` or ``async with``; see the module doc.

    ``api_key``: when set, requests with another ``x-api-key`` get 401 (a missing key always does).
    ``validate``: refuse malformed requests with 400 like the real API (missing fields, empty content,
    unpaired tool_use/tool_result, bad tool names, more than 4 cache breakpoints).
    ``cache_min_tokens``: the smallest prefix that gets cached (the real minimum for Haiku 4.5 is 4096).
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        validate: bool = True,
        cache_min_tokens: int = 0,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.api_key = api_key
        self.validate = validate
        self.cache = PromptCache(cache_min_tokens)
        self._requested_port = port
        self._start_timeout = start_timeout
        self._responder = responder
        self._queue: deque[Reply] = deque()
        self._records: list[RecordedRequest] = []
        self._responder_errors: list[BaseException] = []
        self._cond = threading.Condition()
        self._transports: dict[tuple[str, int], asyncio.Transport] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None

    # -- lifecycle --------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeAnthropic is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``base_url`` (no trailing slash, no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment variables pointing an app (or a subprocess) at this fake."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key or "test"}

    def start(self) -> Self:
        """Start serving; returns once the server accepts connections (bounded by ``start_timeout``)."""
        if self._thread is not None:
            raise RuntimeError("FakeAnthropic is already started")
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
        # without it Nagle + delayed ACK add 40 ms to every response on a reused keep-alive connection.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi,
            http=_tracking_protocol(self._transports),
            ws="none",
            interface="asgi3",
            proxy_headers=False,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
            backlog=4096,
        )
        server = _Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"fake-anthropic-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout
        while not server.ready.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._thread = None
                server.should_exit = True
                sock.close()
                raise RuntimeError(f"fake Anthropic API did not start on {self.host}:{self._port}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: hanging and delayed streams end, open connections close. Bounded by ``timeout``."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        if self._loop is not None and self._stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                self._loop.call_soon_threadsafe(self._stop_event.set)
        server.should_exit = True
        thread.join(timeout / 2)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout / 2)
        self._server = self._thread = None
        if thread.is_alive():
            raise RuntimeError("fake Anthropic API did not stop in time")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- scripting --------------------------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies; each ``POST /v1/messages`` takes the oldest one before asking the responder."""
        with self._cond:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many queued replies are still unused."""
        with self._cond:
            return len(self._queue)

    @property
    def responder(self) -> Responder | None:
        return self._responder

    def set_responder(self, responder: Responder | None) -> None:
        """Answer requests (when the queue is empty) with ``responder(request_json)``; None = default."""
        with self._cond:
            self._responder = responder

    def clear(self) -> None:
        """Forget queued replies, the responder, the records and the prompt cache (reuse across tests)."""
        with self._cond:
            self._queue.clear()
            self._responder = None
            self._records.clear()
            self._responder_errors.clear()
        self.cache.clear()

    def async_client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        """An ``AsyncAnthropic`` pointed at this fake; ``kwargs`` go to its constructor (e.g. max_retries)."""
        import anthropic

        kwargs.setdefault("api_key", self.api_key or "test")
        return anthropic.AsyncAnthropic(base_url=self.base_url, **kwargs)

    # -- records ----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (all paths), oldest first."""
        with self._cond:
            return list(self._records)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests received so far, oldest first."""
        with self._cond:
            return [r for r in self._records if r.path == "/v1/messages"]

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """Requests whose client went away before the response was complete."""
        with self._cond:
            return [r for r in self._records if r.disconnected]

    @property
    def responder_errors(self) -> list[BaseException]:
        """Exceptions raised by the responder (each was answered with a 500 api_error)."""
        with self._cond:
            return list(self._responder_errors)

    def wait_for_requests(self, n: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` message requests arrived; returns them."""
        return self._wait(lambda: len(self.message_requests) >= n, timeout, f"{n} message request(s)")

    def wait_for_disconnects(self, n: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``n`` requests were abandoned by their client; returns them."""
        self._wait(lambda: len(self.disconnects) >= n, timeout, f"{n} disconnect(s)")
        return self.disconnects

    async def wait_for_requests_async(self, n: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:  # noqa: ASYNC109 - the wait runs in a worker thread
        """``wait_for_requests`` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_requests, n, timeout)

    async def wait_for_disconnects_async(self, n: int = 1, timeout: float = 5.0) -> list[RecordedRequest]:  # noqa: ASYNC109 - the wait runs in a worker thread
        """``wait_for_disconnects`` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for_disconnects, n, timeout)

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"waited {timeout} s for {what}; requests: {self._records}")
                self._cond.wait(remaining)
            return [r for r in self._records if r.path == "/v1/messages"]

    def _update(self, record: RecordedRequest, **changes: Any) -> None:
        with self._cond:
            for name, value in changes.items():
                setattr(record, name, value)
            self._cond.notify_all()

    def _next_reply(self, request: JSON) -> Reply:
        with self._cond:
            if self._queue:
                return self._queue.popleft()
            responder = self._responder
        if responder is None:
            return Reply.text(DEFAULT_TEXT)
        return responder(request)

    # -- ASGI -------------------------------------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._loop = asyncio.get_running_loop()
                self._stop_event = asyncio.Event()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            name = key.decode("latin-1").lower()
            headers[name] = (
                f"{headers[name]}, {value.decode('latin-1')}" if name in headers else value.decode("latin-1")
            )
        body: JSON | None = None
        parse_error = False
        try:
            parsed = json.loads(raw) if raw else None
            body = parsed if isinstance(parsed, dict) else None
            parse_error = parsed is not None and body is None
        except (json.JSONDecodeError, UnicodeDecodeError):
            parse_error = True
        with self._cond:
            record = RecordedRequest(len(self._records), scope["method"], scope["path"], headers, body)
            self._records.append(record)
            self._cond.notify_all()
        assert self._stop_event is not None
        exchange = _Exchange(self, send, record, self._stop_event)
        watcher = asyncio.ensure_future(exchange.watch(receive))
        try:
            await self._route(scope, exchange, headers, body, parse_error)
            if not record.completed and not exchange.gone.is_set():
                # Stopped by the server's shutdown mid-response: end the connection cleanly.
                await exchange.close_connection(self._transport_of(scope), abortive=False)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            record.finished.set()
            self._update(record)

    async def _route(
        self, scope: Scope, ex: _Exchange, headers: Mapping[str, str], body: JSON | None, parse_error: bool
    ) -> None:
        path, method = scope["path"], scope["method"]
        if method == "GET" and path in ("/", "/healthz"):
            await ex.json(200, {"status": "ok"})
            return
        if method != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            await ex.api_error(404, "not_found_error", f"Not found: {method} {path}")
            return
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not key:
            await ex.api_error(401, "authentication_error", "x-api-key header is required")
            return
        if self.api_key is not None and key != self.api_key:
            await ex.api_error(401, "authentication_error", "invalid x-api-key")
            return
        if parse_error or body is None:
            await ex.api_error(
                400, "invalid_request_error", "There was an issue with your request body: invalid JSON"
            )
            return
        count_only = path.endswith("/count_tokens")
        if self.validate:
            try:
                _validate(body, count_only=count_only)
            except _InvalidRequest as exc:
                await ex.api_error(400, "invalid_request_error", str(exc))
                return
        if count_only:
            await ex.json(200, {"input_tokens": count_request_tokens(body)})
            return
        try:
            reply = self._next_reply(body)
        except Exception as exc:
            log.exception("fake Anthropic responder raised")
            with self._cond:
                self._responder_errors.append(exc)
            await ex.api_error(500, "api_error", f"fake responder raised {exc!r}")
            return
        self._update(ex.record, reply=reply)
        if not await ex.pause(reply.latency):
            return
        if reply.error is not None:
            error = reply.error
            await ex.api_error(error.status, error.type, error.message, error.headers)
            return
        rendered = _render(reply, body, self.cache)
        if body.get("stream") is True:
            await self._stream(scope, ex, reply, rendered)
        else:
            await self._answer_json(scope, ex, reply, rendered)

    async def _answer_json(self, scope: Scope, ex: _Exchange, reply: Reply, rendered: _Rendered) -> None:
        fault = reply.fault
        if fault is not None and fault.kind in ("reset", "close"):
            await self._drop(scope, ex, abortive=fault.kind == "reset")
            return
        if fault is not None and fault.kind == "hang":
            await ex.until_gone()
            return
        if fault is not None and fault.kind == "stream_error":
            await ex.api_error(_STATUS_OF_ERROR.get(fault.error_type, 500), fault.error_type, fault.message)
            return
        message = rendered.message or {}
        if fault is not None:  # truncate / malformed: a body that is not valid JSON
            await ex.start(200, "application/json")
            await ex.body(_dumps(message)[:-7].encode(), last=True)
            return
        self._update(ex.record, usage=message.get("usage"))
        await ex.json(200, message)

    async def _stream(self, scope: Scope, ex: _Exchange, reply: Reply, rendered: _Rendered) -> None:
        events = rendered.events
        fault = reply.fault
        cut = len(events)
        if fault is not None:
            default_cut = len(events) - 1 if fault.kind == "truncate" else 2
            cut = min(len(events), fault.after_events if fault.after_events is not None else default_cut)
        await ex.start(200, "text/event-stream; charset=utf-8", [("cache-control", "no-cache")])
        for i in range(cut):
            if i > 0 and not await ex.pause(reply.delay):
                return
            if ex.gone.is_set() or ex.stop.is_set():
                return
            last = fault is None and i == len(events) - 1
            await ex.body(events[i].encode(), last=last)
            changes: dict[str, Any] = {"events_sent": i + 1}
            if i in rendered.usage_by_event:
                changes["usage"] = rendered.usage_by_event[i]
            self._update(ex.record, **changes)
        if fault is None:
            return
        if cut > 0 and not await ex.pause(reply.delay):
            return
        if fault.kind == "stream_error":
            error = {"type": "error", "error": {"type": fault.error_type, "message": fault.message}}
            await ex.body(SseEvent("error", _dumps(error)).encode(), last=True)
        elif fault.kind == "truncate":
            await ex.body(b"", last=True)
        elif fault.kind == "hang":
            await ex.until_gone()
        elif fault.kind in ("reset", "close"):
            await self._drop(scope, ex, abortive=fault.kind == "reset")
        elif fault.kind == "malformed":
            rest = events[cut:]
            await ex.body(SseEvent("content_block_delta", fault.data).encode(), last=not rest)
            for j, event in enumerate(rest):
                if not await ex.pause(reply.delay):
                    return
                await ex.body(event.encode(), last=j == len(rest) - 1)

    def _transport_of(self, scope: Scope) -> asyncio.Transport | None:
        client = scope.get("client")
        return self._transports.get((str(client[0]), int(client[1]))) if client else None

    async def _drop(self, scope: Scope, ex: _Exchange, *, abortive: bool) -> None:
        transport = self._transport_of(scope)
        if transport is None:
            raise RuntimeError("fake Anthropic API cannot find the connection to drop")
        await ex.close_connection(transport, abortive=abortive)


# --------------------------------------------------------------------------------------------------------
# The demo responder


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of rows (columns = keys in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)

    def cell(value: Any) -> str:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _render_result(name: str, block: Mapping[str, Any]) -> str:
    text = tool_result_text(block)
    if block.get("is_error"):
        return f"⚠️ `{name}` failed: {text}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return f"`{name}` returned:\n\n> {text}"
    if isinstance(data, dict):
        # Unwrap {"count": n, "members": [...]} and {"invitation": {...}} shapes.
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1:
            data = lists[0]
        elif len(data) == 1 and isinstance(next(iter(data.values())), dict):
            data = next(iter(data.values()))
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        noun = "row" if len(data) == 1 else "rows"
        return f"**{name}** — {len(data)} {noun}:\n\n{markdown_table(data)}"
    if isinstance(data, dict):
        return f"**{name}**:\n\n" + markdown_table([{"field": k, "value": v} for k, v in data.items()])
    if isinstance(data, list) and not data:
        return f"**{name}**: nothing found."
    return f"**{name}**: `{json.dumps(data, ensure_ascii=False)}`"


_EMAIL = re.compile(r"invite\s+([^\s@,;]+@[^\s@,;]+[A-Za-z])", re.IGNORECASE)
_ROLES = ("owner", "admin", "member", "viewer")


def _fit_args(request: Mapping[str, Any], name: str, args: JSON) -> JSON:
    """Keep only the arguments the offered tool declares (tool schemas belong to the tools' owner)."""
    for tool in request.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") == name:
            props = (tool.get("input_schema") or {}).get("properties")
            if isinstance(props, dict):
                return {k: v for k, v in args.items() if k in props}
    return args


def _demo_intent(text: str) -> tuple[str, JSON, str] | None:
    lowered = text.lower()
    email = _EMAIL.search(text)
    if email:
        role = next((r for r in _ROLES if re.search(rf"\bas (an? )?{r}\b", lowered)), "member")
        address = email.group(1)
        return "invitation_create", {"email": address, "role": role}, f"I'll invite {address} as {role}."
    # The example host app's tools (`make run EXAMPLE=1`: its MCP server is named "projects").
    task = re.search(r"\badd (?:a )?task:?\s+(.+?)(?:\s+to\s+(.+?))?[.!]?$", text, re.IGNORECASE)
    if task:
        project = task.group(2) or "Website relaunch"
        preface = f"I'll add that task to {project}."
        return "projects_task_create", {"project": project, "title": task.group(1)}, preface
    if re.search(r"\bwho am i\b", lowered):
        return "projects_whoami", {}, "Let me ask the projects app who you are."
    if re.search(r"\btasks?\b", lowered):
        return "projects_task_list", {"status": "open"}, "Let me list the open tasks."
    if re.search(r"\bprojects?\b", lowered):
        return "projects_project_list", {}, "Let me list the projects."
    if "invitation" in lowered or "pending" in lowered:
        return "invitation_list", {}, "Let me look up the pending invitations."
    if re.search(r"\badmins?\b", lowered):
        return "member_list", {"role": "admin"}, "Let me check who the admins are."
    if re.search(r"\b(members?|who)\b", lowered):
        return "member_list", {}, "Let me list the members."
    if re.search(r"\b(organi[sz]ation|org)\b", lowered):
        return "organization_get", {}, "Let me look at your organization."
    return None


def demo_responder(request: JSON, *, delay: float = 0.0) -> Reply:
    """A plausible assistant for manual runs and browser tests.

    - A request ending with tool results → a Markdown summary (a table per result).
    - "invite <email> [as <role>]" → ``invitation_create``; "invitation"/"pending" → ``invitation_list``;
      "admin" → ``member_list {"role": "admin"}``; "members"/"who" → ``member_list``;
      "organization" → ``organization_get``; with the example host app (``make run EXAMPLE=1``): "add a task
      <title> [to <project>]" → ``projects_task_create``, "who am I" → ``projects_whoami``, "tasks" →
      ``projects_task_list``, "projects" → ``projects_project_list`` — each only if the request offers that
      tool, else a refusal.
    - Anything else → a short Markdown help text quoting the question.
    """
    results = tool_results(request)
    if results:
        messages = request.get("messages") or []
        names: dict[str, str] = {}
        for block in (messages[-2].get("content") if len(messages) > 1 else None) or []:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                names[str(block.get("id"))] = str(block.get("name"))
        parts = [_render_result(names.get(str(b.get("tool_use_id")), "tool"), b) for b in results]
        return Reply.text("Here is what I found:\n\n" + "\n\n".join(parts), delay=delay)
    question = last_user_text(request)
    intent = _demo_intent(question)
    if intent is not None:
        name, args, preface = intent
        if name not in tool_names(request):
            return Reply.text(
                f"Sorry, I can't do that: the `{name}` tool is not available with your role.", delay=delay
            )
        return Reply.tool_use(name, _fit_args(request, name, args), text_before=preface, delay=delay)
    quoted = " ".join(question.split())[:200] or "(nothing)"
    return Reply.text(
        "I'm the **demo assistant** (a local fake of Claude), so my answers are canned.\n\n"
        f"> {quoted}\n\n"
        "Try asking:\n\n"
        "- *Who are the admins here?*\n"
        "- *List the members*\n"
        "- *Show our organization*\n"
        "- *List pending invitations*\n"
        "- *Invite gina@acme.test as a member*\n"
        + (
            "- *List the projects* (the example host app's tools)\n"
            "- *Add a task Write the docs to Website relaunch*\n"
            if "projects_task_create" in tool_names(request)
            else ""
        ),
        delay=delay,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo responder until interrupted."""
    parser = argparse.ArgumentParser(description="A local fake of the Anthropic Messages API (demo answers).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--delay", type=float, default=0.03, help="seconds between stream events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def respond(request: JSON) -> Reply:
        return demo_responder(request, delay=args.delay)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with FakeAnthropic(host=args.host, port=args.port, responder=respond) as fake:
        print(f"fake Anthropic API on {fake.base_url}  (ANTHROPIC_BASE_URL={fake.base_url})", file=sys.stderr)
        stop.wait()


if __name__ == "__main__":
    main()

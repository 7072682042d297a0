"""Instrumentation for the benchmark server: per-request timings of each admission and loop step, and the
number of DynamoDB and Redis round trips, without touching the product code.

A `Trace` is put in a ContextVar when a message request enters the app; tasks and worker threads started
for the request copy the context, so spans recorded anywhere in the request land in its trace. Steps are
timed by wrapping the methods that perform them; DynamoDB round trips are counted with botocore's
`before-call`/`after-call` events, Redis round trips by wrapping the connection's `send_packed_command`
(one per command or pipeline sent).
"""

from __future__ import annotations

import contextvars
import functools
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class Trace:
    """What one request did, with times in ms from the request's arrival in the app."""

    started: float = field(default_factory=time.perf_counter)
    spans: list[tuple[str, float, float]] = field(default_factory=list)
    dynamodb: list[tuple[str, float, float]] = field(default_factory=list)
    redis: int = 0
    first_text: float | None = None
    model_calls: list[tuple[float, float | None]] = field(default_factory=list)

    def now(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "spans": self.spans,
            "dynamodb": self.dynamodb,
            "redis": self.redis,
            "first_text": self.first_text,
            "model_calls": self.model_calls,
        }


TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("bench_trace", default=None)
TRACES: dict[str, dict[str, Any]] = {}


def _timed(name: str, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        trace = TRACE.get()
        if trace is None:
            return await fn(*args, **kwargs)
        start = trace.now()
        try:
            return await fn(*args, **kwargs)
        finally:
            trace.spans.append((name, start, trace.now()))

    return wrapper


def _patch(cls: type, method: str, name: str) -> None:
    setattr(cls, method, _timed(name, getattr(cls, method)))


def install(boto3_session: Any) -> None:
    """Wrap the steps worth timing and hook the store clients; call before the app is created."""
    from chatbot.agent import ModelCall
    from chatbot.appdata import AppData
    from chatbot.audit import AuditLog
    from chatbot.auth import TokenVerifier
    from chatbot.conversations import ConversationStore
    from chatbot.journal.memory import MemoryJournal
    from chatbot.journal.redis import RedisJournal
    from chatbot.lock import Lease
    from chatbot.lock.memory import MemoryRequestLock
    from chatbot.lock.redis import RedisRequestLock
    from chatbot.quota import QuotaLedger
    from chatbot.tools import Catalog, Toolbox
    from redis.asyncio.connection import AbstractConnection

    _patch(TokenVerifier, "verify", "auth")
    _patch(AppData, "get_caller", "membership")
    _patch(RedisRequestLock, "acquire", "lock")
    _patch(MemoryRequestLock, "acquire", "lock")
    _patch(QuotaLedger, "reserve", "quota_reserve")
    _patch(QuotaLedger, "settle", "quota_settle")
    _patch(Toolbox, "listing", "tool_listing")
    _patch(Catalog, "call", "tool_call")
    _patch(Lease, "release", "lock_release")
    _patch(ConversationStore, "load", "conversation_load")
    _patch(ConversationStore, "begin", "conversation_begin")
    _patch(ConversationStore, "finish", "conversation_finish")
    _patch(AuditLog, "record", "audit")
    for journal in (RedisJournal, MemoryJournal):
        _patch(journal, "open", "journal_open")
        _patch(journal, "append", "journal_append")

    original_events = ModelCall.events

    async def model_call_events(self: Any) -> Any:
        trace = TRACE.get()
        if trace is None:
            async for evt in original_events(self):
                yield evt
            return
        trace.model_calls.append((trace.now(), None))
        index = len(trace.model_calls) - 1
        try:
            async for evt in original_events(self):
                yield evt
        finally:
            trace.model_calls[index] = (trace.model_calls[index][0], trace.now())

    ModelCall.events = model_call_events  # type: ignore[method-assign]

    original_send = AbstractConnection.send_packed_command

    async def send_packed_command(self: Any, command: Any, check_health: bool = True) -> None:
        trace = TRACE.get()
        if trace is not None:
            trace.redis += 1
        await original_send(self, command, check_health)

    AbstractConnection.send_packed_command = send_packed_command  # type: ignore[method-assign]

    def before_call(model: Any, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()
        # Which table the call is about (the first one named), so writes can be counted per table.
        found = re.search(rb'"TableName":\s*"([^"]+)"', params.get("body") or b"")
        context["bench_table"] = found.group(1).decode().split("-")[0] if found else ""

    def after_call(model: Any, context: dict[str, Any], **_: Any) -> None:
        trace = TRACE.get()
        started = context.get("bench_started")
        if trace is not None and started is not None:
            name = f"{model.name}:{context['bench_table']}" if context.get("bench_table") else model.name
            trace.dynamodb.append((name, (started - trace.started) * 1000, trace.now()))

    boto3_session.events.register("before-call.dynamodb.*", before_call)
    boto3_session.events.register("after-call.dynamodb.*", after_call)


class TraceMiddleware:
    """Outermost ASGI middleware: one `Trace` per message request, kept by request id once it ends, and
    served (then forgotten) at `GET /__bench/traces`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/__bench/traces":
            body = json.dumps(TRACES).encode()
            TRACES.clear()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["path"] != "/api/chatbot/message":
            await self.app(scope, receive, send)
            return
        trace = Trace()
        token = TRACE.set(trace)
        request_id = ""

        async def traced_send(message: Message) -> None:
            nonlocal request_id
            if message["type"] == "http.response.start":
                for key, value in message.get("headers", []):
                    if key == b"x-request-id":
                        request_id = value.decode()
            elif (
                message["type"] == "http.response.body"
                and trace.first_text is None
                and b"event: text" in message.get("body", b"")
            ):
                trace.first_text = trace.now()
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        finally:
            TRACE.reset(token)
            if request_id:
                TRACES[request_id] = {**trace.as_dict(), "ended": trace.now()}

"""The SSE edge: one admitted chat request's response, from its first event to the release of its lock.

`ChatStream` is an ASGI response shaped like Starlette's `StreamingResponse`: one task group, a producer
that runs the turn under the request deadline and the cancel signal, a memory object stream to the writer,
and the request's cleanup in one `finally`. It owns the request's resources (`AsyncExitStack`: the meter,
then the lock lease) from the moment admission hands them over; closing them settles the quota and releases
the lock, before the final event is written, so a client that sends its next message as soon as it reads
`done` is admitted.
"""

from __future__ import annotations

import contextlib
import time
from contextlib import AsyncExitStack, aclosing
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .agent import Turn
from .errors import ChatbotError, InternalError, Timeout
from .events import KEEP_ALIVE, Event, encode, event, is_final
from .meter import Meter
from .observability import RequestMetrics, logger

# Bounded so a slow reader slows the upstream read instead of buffering without limit.
QUEUE_SIZE = 256
# How long cleanup (settling usage, releasing the lock) may take at most.
CLEANUP_SECONDS = 10


class ChatStream(Response):
    """The `text/event-stream` response of one chat request: its events, keep-alives, the deadline, a cancel,
    and exactly one final `done` or `error` event."""

    media_type = "text/event-stream"

    def __init__(
        self,
        turn: Turn,
        meter: Meter,
        resources: AsyncExitStack,
        cancelled: anyio.Event,
        *,
        deadline_seconds: float,
        keepalive_seconds: float,
        metrics: RequestMetrics,
        log_keys: dict[str, str],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._turn, self._meter, self._resources, self._cancelled = turn, meter, resources, cancelled
        self._deadline_seconds, self._keepalive_seconds = deadline_seconds, keepalive_seconds
        self._metrics, self._log_keys = metrics, log_keys
        self._started = time.monotonic()
        self._first_text_at: float | None = None
        self._outcome = "unfinished"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send_events, receive_events = anyio.create_memory_object_stream[Event](QUEUE_SIZE)
        async with anyio.create_task_group() as request:
            request.start_soon(self._produce, send_events)
            request.start_soon(_cancel_on_disconnect, receive, request.cancel_scope)
            # A server may report a client gone by failing the send (ASGI 2.4): that is a disconnect too.
            with contextlib.suppress(OSError):
                await self._write(receive_events, send)
            request.cancel_scope.cancel()

    async def _produce(self, out: MemoryObjectSendStream[Event]) -> None:
        """Run the turn into `out`, then clean up, then send the final event."""
        async with out:
            try:
                final = await self._run(out)
                self._outcome = final.get("stop_reason") or final["code"]
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_SECONDS):
                    try:
                        await self._resources.aclose()
                    finally:
                        self._record()
            await self._emit(out, final)

    async def _run(self, out: MemoryObjectSendStream[Event]) -> Event:
        """Every event but the final one; returns the final one."""
        final: Event | None = None
        with anyio.move_on_after(self._deadline_seconds) as deadline:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._stop_when_cancelled, tasks.cancel_scope)
                final = await self._outcome_of(out, tasks)
                tasks.cancel_scope.cancel()
        if final is None:
            # Stopped by a cancel or the deadline: the meter has charged the call cut short; report it first.
            unreported = self._meter.unreported()
            if unreported is not None:
                await self._emit(out, event("usage", **unreported.as_dict()))
            final = (
                self._error(Timeout())
                if deadline.cancelled_caught
                else event("done", stop_reason="cancelled", iterations=self._turn.iterations)
            )
        return final

    async def _outcome_of(self, out: MemoryObjectSendStream[Event], tasks: anyio.abc.TaskGroup) -> Event:
        """Stream the turn's events; its final event, or the `error` event of what stopped it."""
        try:
            async with aclosing(self._turn.events(tasks)) as events:
                async for evt in events:
                    await self._emit(out, evt)
        except ChatbotError as exc:
            return self._error(exc)
        except Exception:  # noqa: BLE001 - the stream's edge: anything unexpected becomes an `error` event
            logger.exception("chat stream failed")
            return self._error(InternalError())
        return event("done", stop_reason=self._turn.stop_reason, iterations=self._turn.iterations)

    async def _stop_when_cancelled(self, scope: anyio.CancelScope) -> None:
        await self._cancelled.wait()
        scope.cancel()

    async def _write(self, events: MemoryObjectReceiveStream[Event], send: Send) -> None:
        """Write events as they come (everything already queued in one write), a keep-alive after a quiet
        interval, and end the body once the producer is done."""
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async with events:
            while True:
                try:
                    batch = [await self._next(events)]
                except anyio.EndOfStream:
                    break
                if batch == [None]:
                    await _send_body(send, KEEP_ALIVE)
                    continue
                while not is_final(batch[-1]):
                    try:
                        batch.append(events.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await _send_body(send, b"".join(encode(evt) for evt in batch))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _next(self, events: MemoryObjectReceiveStream[Event]) -> Any:
        """The next event, or None after a quiet keep-alive interval. An event already queued is taken
        without a wait (and without the cost of a timed cancel scope)."""
        try:
            return events.receive_nowait()
        except anyio.WouldBlock:
            with anyio.move_on_after(self._keepalive_seconds):
                return await events.receive()
        return None

    async def _emit(self, out: MemoryObjectSendStream[Event], evt: Event) -> None:
        """Queue `evt` for the writer, recording what the metrics want to know of it."""
        if evt["type"] == "text" and self._first_text_at is None:
            self._first_text_at = time.monotonic()
            self._metrics.milliseconds("TimeToFirstToken", (self._first_text_at - self._started) * 1000)
        elif evt["type"] == "tool_result":
            self._metrics.count("ToolCalls")
            if evt["is_error"]:
                self._metrics.count("ToolErrors")
        # Without yielding while there is room: events produced together then go out in one write.
        try:
            out.send_nowait(evt)
        except anyio.WouldBlock:
            await out.send(evt)

    def _error(self, exc: ChatbotError) -> Event:
        self._metrics.count(f"Error_{exc.code}")
        return event("error", **exc.event_data())

    def _record(self) -> None:
        totals = self._meter.total
        self._metrics.count("ModelCalls", self._turn.iterations)
        self._metrics.count("InputTokens", totals.input_tokens)
        self._metrics.count("OutputTokens", totals.output_tokens)
        self._metrics.count("CacheReadTokens", totals.cache_read_input_tokens)
        self._metrics.count("CacheCreationTokens", totals.cache_creation_input_tokens)
        self._metrics.flush()
        logger.info(
            "chat request finished",
            extra={
                **self._log_keys,
                "outcome": self._outcome,
                "iterations": self._turn.iterations,
                "tokens": totals.counted,
                "duration_ms": round((time.monotonic() - self._started) * 1000, 1),
            },
        )


async def _send_body(send: Send, body: bytes) -> None:
    await send({"type": "http.response.body", "body": body, "more_body": True})


async def _cancel_on_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    """A client that goes away cancels its request."""
    while True:
        message: dict[str, Any] = dict(await receive())
        if message["type"] == "http.disconnect":
            scope.cancel()
            return

"""The SSE edge: one admitted chat request's response, from its first event to the release of its lock.

`ChatStream` is an ASGI response shaped like Starlette's `StreamingResponse`: one task group, a producer
that runs the turn under the request deadline and the cancel signal, a memory object stream to the writer,
and the request's cleanup in one `finally`. It owns the request's resources (`AsyncExitStack`: the meter,
then the lock lease) from the moment admission hands them over; closing them settles the quota and releases
the lock, before the final event is written, so a client that sends its next message as soon as it reads
`done` is admitted.
"""

from __future__ import annotations

import math
import time
from contextlib import AsyncExitStack, aclosing
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .agent import Turn
from .errors import ChatbotError, InternalError, Timeout, Unavailable
from .events import KEEP_ALIVE, Event, encode, event, is_final
from .journal import Entry, Journal
from .meter import Meter
from .observability import RequestMetrics, logger
from .settings import Settings
from .transcript import Transcript

# Bounded so a slow reader slows the upstream read instead of buffering without limit.
QUEUE_SIZE = 256
# How long cleanup (settling usage, releasing the lock) may take at most.


class ChatStream(Response):
    """The `text/event-stream` response of one chat request: its events (each with its id, and kept in the
    journal for re-attaching), keep-alives, the deadline, a cancel, and exactly one final `done` or `error`.

    The request belongs to its lease, not to the connection: a client that goes away stops being written to,
    and the request runs on to its end (as it would in Lambda anyway); only a cancel stops it early."""

    media_type = "text/event-stream"

    def __init__(
        self,
        turn: Turn,
        meter: Meter,
        transcript: Transcript,
        journal: Journal | None,
        resources: AsyncExitStack,
        cancelled: anyio.Event,
        *,
        settings: Settings,
        metrics: RequestMetrics,
        log_keys: dict[str, str],
    ) -> None:
        self.status_code = 200
        self.background = None
        self.init_headers({"cache-control": "no-cache", "x-accel-buffering": "no"})
        self._turn, self._meter, self._transcript = turn, meter, transcript
        self._journal, self._resources, self._cancelled = journal, resources, cancelled
        self._deadline_seconds = settings.chatbot_request_timeout_seconds
        self._cleanup_seconds = settings.cleanup_seconds
        self._keepalive_seconds = settings.chatbot_keepalive_seconds
        self._metrics, self._log_keys = metrics, log_keys
        self._started = time.monotonic()
        self._first_text_at: float | None = None
        self._outcome = "unfinished"
        self._last_id = 0
        self._disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        send_events, receive_events = anyio.create_memory_object_stream[Entry](QUEUE_SIZE)
        # Unbounded: keeping events must never hold up writing them.
        to_keep, kept = anyio.create_memory_object_stream[list[Entry]](math.inf)
        async with anyio.create_task_group() as request:
            # The producer first: it gets the model call on its way before the journal's first round trip.
            request.start_soon(self._produce, send_events)
            request.start_soon(self._keep, kept)
            await self._write(receive_events, send, to_keep, request)

    async def _produce(self, out: MemoryObjectSendStream[Entry]) -> None:
        """Run the turn into `out`, then clean up, then send the final event."""
        async with out:
            try:
                final = await self._run(out)
                self._outcome = final.get("stop_reason") or final["code"]
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_seconds):
                    try:
                        await self._resources.aclose()
                    except Exception:  # noqa: BLE001 - the stream's edge: the answer is out; log the rest
                        logger.exception("chat request cleanup failed", extra=self._log_keys)
                    finally:
                        self._record()
            await self._emit(out, final)

    async def _run(self, out: MemoryObjectSendStream[Entry]) -> Event:
        """Every event but the final one; returns the final one."""
        conversation = self._transcript.conversation
        await self._emit(out, event("conversation", id=conversation.id, title=conversation.title))
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

    async def _outcome_of(self, out: MemoryObjectSendStream[Entry], tasks: anyio.abc.TaskGroup) -> Event:
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

    async def _write(
        self,
        events: MemoryObjectReceiveStream[Entry],
        send: Send,
        to_keep: MemoryObjectSendStream[list[Entry]],
        request: anyio.abc.TaskGroup,
    ) -> None:
        """Write events as they come (everything already queued in one write), a keep-alive after a quiet
        interval, and end the body once the producer is done. Each written batch goes on to the journal.
        A client gone does not stop this: the events are still drained and kept, for it to re-attach.

        The conversation's start is written once the model has begun to answer (the first event after
        `conversation`): its round trips and CPU then overlap the answer instead of preceding it."""
        await self._send(
            send, {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        recording = False
        async with events, to_keep:
            while True:
                try:
                    first = await self._next(events)
                except anyio.EndOfStream:
                    break
                if first is None:
                    await self._send(send, _body(KEEP_ALIVE))
                    continue
                batch = [first]
                while not is_final(batch[-1][1]):
                    try:
                        batch.append(events.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._send(send, _body(b"".join(encode(evt, event_id) for event_id, evt in batch)))
                to_keep.send_nowait(batch)
                if not recording and batch[-1][1]["type"] != "conversation":
                    recording = True
                    request.start_soon(self._begin_transcript)
        await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})

    async def _send(self, send: Send, message: dict[str, Any]) -> None:
        if self._disconnected:
            return
        try:
            await send(message)
        except OSError:
            # A server may report a client gone by failing the send (ASGI 2.4); uvicorn drops it silently.
            self._disconnected = True

    async def _next(self, events: MemoryObjectReceiveStream[Entry]) -> Entry | None:
        """The next event, or None after a quiet keep-alive interval. An event already queued is taken
        without a wait (and without the cost of a timed cancel scope)."""
        try:
            return events.receive_nowait()
        except anyio.WouldBlock:
            with anyio.move_on_after(self._keepalive_seconds):
                return await events.receive()
        return None

    async def _begin_transcript(self) -> None:
        try:
            await self._transcript.begin()
        except Exception:  # noqa: BLE001 - the stream's edge: a record not written must not break the answer
            logger.exception("conversation start not written", extra=self._log_keys)

    async def _keep(self, batches: MemoryObjectReceiveStream[list[Entry]]) -> None:
        """Keep written events in the journal (opened at admission, or None when it could not be), in
        order, for re-attaching. A journal that fails is logged once and then skipped: the answer still
        reaches the client that is connected."""
        request_id = self._transcript.request_id
        failed = self._journal is None
        async with batches:
            async for batch in batches:
                # What queued meanwhile goes in the same round trip.
                entries = list(batch)
                while True:
                    try:
                        entries += batches.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                if failed or self._journal is None:
                    continue
                try:
                    await self._journal.append(request_id, entries, closing=is_final(entries[-1][1]))
                except Unavailable:
                    failed = journal_lost(self._metrics)
                except Exception:  # noqa: BLE001 - the stream's edge: keeping events must not break the answer
                    logger.exception("event journal failed", extra=self._log_keys)
                    failed = journal_lost(self._metrics)

    async def _emit(self, out: MemoryObjectSendStream[Entry], evt: Event) -> None:
        """Queue `evt` with the next id, recording what the metrics want to know of it."""
        if evt["type"] == "text" and self._first_text_at is None:
            self._first_text_at = time.monotonic()
            self._metrics.milliseconds("TimeToFirstToken", (self._first_text_at - self._started) * 1000)
        elif evt["type"] == "tool_result":
            self._metrics.count("ToolCalls")
            if evt["is_error"]:
                self._metrics.count("ToolErrors")
        self._last_id += 1
        entry = (self._last_id, evt)
        # Without yielding while there is room: events produced together then go out in one write.
        try:
            out.send_nowait(entry)
        except anyio.WouldBlock:
            await out.send(entry)

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


def journal_lost(metrics: RequestMetrics) -> bool:
    """Log and count a journal that failed: this request cannot be re-attached to."""
    logger.warning("event journal unavailable: this request cannot be re-attached")
    metrics.count("JournalFailures")
    return True


def _body(chunk: bytes) -> dict[str, Any]:
    return {"type": "http.response.body", "body": chunk, "more_body": True}

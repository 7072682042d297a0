"""One admitted chat request: its lock lease, its turn of the agent loop, and the SSE stream around them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .agent import Turn
from .errors import ChatbotError, InternalError, Timeout
from .events import KEEP_ALIVE, StopReason, encode, event
from .lock import Lease
from .observability import RequestMetrics, logger

_END = object()
# Bounded so a slow reader slows the upstream read instead of buffering without limit.
QUEUE_SIZE = 256
# How long cleanup (cancelling the producer, settling usage, releasing the lock) may take at most.
CLEANUP_SECONDS = 10


def _ends(item: Any) -> bool:
    return item is _END or item["type"] in ("done", "error")


class ChatStream:
    """Drives a `Turn` in a producer task and turns its events into SSE bytes, with keep-alives, the
    request deadline and cancellation. Exactly one `done` or `error` event ends the stream."""

    def __init__(
        self,
        turn: Turn,
        lease: Lease,
        *,
        deadline_seconds: float,
        keepalive_seconds: float,
        metrics: RequestMetrics,
        log_keys: dict[str, str],
    ) -> None:
        self._turn, self._lease = turn, lease
        self._deadline_seconds, self._keepalive = deadline_seconds, keepalive_seconds
        self._metrics, self._log_keys = metrics, log_keys
        self._queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
        self._producer: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._first_text_at: float | None = None
        self._outcome = "unfinished"
        self._closed = False

    async def body(self) -> AsyncIterator[bytes]:
        """The SSE body."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_seconds
        self._producer = asyncio.create_task(self._produce())
        cancelled = asyncio.ensure_future(self._lease.cancelled.wait())
        getter: asyncio.Future[Any] | None = None
        final: dict[str, Any] | None = None
        try:
            while True:
                if getter is None:
                    getter = asyncio.ensure_future(self._queue.get())
                remaining = deadline - loop.time()
                if remaining <= 0:
                    final = self._final_error(Timeout())
                    break
                done, _ = await asyncio.wait(
                    {getter, cancelled},
                    timeout=min(self._keepalive, remaining),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter in done:
                    # Everything already queued goes out in one write: fewer sends under load.
                    batch = [getter.result()]
                    getter = None
                    while not self._queue.empty() and not _ends(batch[-1]):
                        batch.append(self._queue.get_nowait())
                    frames: list[bytes] = []
                    for item in batch:
                        if item is _END:
                            if frames:
                                yield b"".join(frames)
                            return
                        self._observe(item)
                        frames.append(encode(item))
                        if item["type"] in ("done", "error"):
                            # Released before the client reads the end, so its next message is admitted.
                            await self.close()
                            yield b"".join(frames)
                            return
                    yield b"".join(frames)
                elif cancelled in done:
                    final = event("done", stop_reason="cancelled", iterations=self._turn.iterations)
                    self._outcome = "cancelled"
                    break
                elif loop.time() < deadline:
                    yield KEEP_ALIVE
            # Cancelled or out of time: stop the model (closing its stream), charge what it used, then end.
            await self._stop_producer()
            if self._turn.unreported is not None:
                yield encode(event("usage", **self._turn.unreported.as_dict()))
                self._turn.unreported = None
            await self.close()
            yield encode(final)
        finally:
            for future in (getter, cancelled):
                if future is not None:
                    future.cancel()

    def _observe(self, item: dict[str, Any]) -> None:
        """Metrics of an event on its way out."""
        if item["type"] == "text" and self._first_text_at is None:
            self._first_text_at = time.monotonic()
            self._metrics.milliseconds("TimeToFirstToken", (self._first_text_at - self._started) * 1000)
        elif item["type"] == "tool_result":
            self._metrics.count("ToolCalls")
            if item["is_error"]:
                self._metrics.count("ToolErrors")
        elif item["type"] in ("done", "error"):
            self._outcome = item.get("stop_reason") or item.get("code", "error")

    async def _produce(self) -> None:
        async def emit(evt: dict[str, Any]) -> None:
            await self._queue.put(evt)

        try:
            stop: StopReason = await self._turn.run(emit)
            await self._settle()
            await emit(event("done", stop_reason=stop, iterations=self._turn.iterations))
        except ChatbotError as exc:
            await self._settle()
            await emit(self._final_error(exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the stream's edge: anything unexpected becomes an `error` event
            logger.exception("chat stream failed")
            await self._settle()
            await emit(self._final_error(InternalError()))
        finally:
            await self._queue.put(_END)

    async def _settle(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._turn.finish()

    def _final_error(self, exc: ChatbotError) -> dict[str, Any]:
        self._outcome = exc.code
        self._metrics.count(f"Error_{exc.code}")
        return event("error", code=exc.code, message=exc.message)

    async def _stop_producer(self) -> None:
        producer = self._producer
        if producer is None or producer.done():
            return
        producer.cancel()
        # Drain so a producer blocked on a full queue can observe its cancellation.
        while not producer.done():
            try:
                self._queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.wait({producer}, timeout=0.05)

    async def close(self) -> None:
        """Stop the model if still running, settle usage, release the lock, emit metrics. Idempotent, and
        safe to call while the surrounding task is being cancelled (the client went away)."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLEANUP_SECONDS):
            try:
                await self._stop_producer()
                await self._settle()
            finally:
                await self._lease.release()
                self._record()

    def _record(self) -> None:
        totals = self._turn.totals
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


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` response that always cleans up its `ChatStream`, even when the client leaves
    before the first byte (Starlette then never starts the body iterator)."""

    def __init__(self, stream: ChatStream, headers: dict[str, str]) -> None:
        super().__init__(
            stream.body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no", **headers},
        )
        self._stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._stream.close()

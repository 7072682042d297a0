"""One request's quota: reserve before each model call, charge what the call used, settle exactly once.

The ledger (`quota.py`) knows tiers and items; the meter knows one request's sequence of calls. It holds
the reservation not settled yet, and what its call is charged so far, so that whatever ends the request
(the model's last answer, an upstream error, a cancel, the deadline, a crash of our own) leaves exactly one
settle to do, which `close` does once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from opentelemetry.trace import Tracer

from .errors import LimitExceeded, Unavailable
from .observability import NO_TRACER
from .quota import QuotaLedger, Reservation
from .usage import Usage

logger = logging.getLogger(__name__)

BYTES_PER_OUTPUT_TOKEN_BOUND = 1
"""Streamed bytes per output token assumed for a call cut short before the API reported its final usage.
Text averages about four bytes a token, but emoji and rare scripts can take a token per byte; a token is
never less than a byte, so one byte a token cannot under-count."""


@dataclass
class _Call:
    """A model call's reservation and what it is charged."""

    reservation: Reservation
    estimated_input: int
    reported_usage: Usage = field(default_factory=Usage)
    complete: bool = False
    streamed_bytes: int = 0
    reported: bool = False
    sent: bool = False

    def charge(self) -> Usage:
        """The API's own counts once the call completed. For a call cut short: the input the API reported,
        or, when it reported none but the request went out, the estimated input (the model may be reading
        it); and output bounded from the bytes streamed (or the API's count so far, whichever is more)."""
        seen = self.reported_usage
        if self.complete:
            return seen
        estimated_output = math.ceil(self.streamed_bytes / BYTES_PER_OUTPUT_TOKEN_BOUND)
        unreported_input = self.sent and seen.counted == seen.output_tokens
        return Usage(
            input_tokens=self.estimated_input if unreported_input else seen.input_tokens,
            cache_creation_input_tokens=seen.cache_creation_input_tokens,
            cache_read_input_tokens=seen.cache_read_input_tokens,
            output_tokens=max(seen.output_tokens, estimated_output),
        )


class Meter:
    """Reservation → charge → settle for the model calls of one request of `user_id` in `org_id`."""

    def __init__(self, ledger: QuotaLedger, user_id: str, org_id: str, tracer: Tracer = NO_TRACER) -> None:
        self._ledger = ledger
        self._tracer = tracer
        self._user_id, self._org_id = user_id, org_id
        self._open: _Call | None = None
        self._calls = 0
        self._settled = Usage()
        self._closed = False
        self._tool_calls = 0  # tool calls that ran and are not recorded yet

    @property
    def limits(self) -> dict[str, int]:
        """Each tier's daily limit."""
        return self._ledger.limits

    @property
    def calls(self) -> int:
        """Model calls reserved so far."""
        return self._calls

    @property
    def total(self) -> Usage:
        """Everything charged to this request: settled calls plus the open one's charge so far."""
        return self._settled + (self._open.charge() if self._open else Usage())

    async def reserve(self, estimated_input: int, max_tokens: int) -> int:
        """Hold room for the next model call, settling the previous one in the same write; returns the
        `max_tokens` that fit. Raises `LimitExceeded` (the previous call is then settled) or `Unavailable`.

        The previous call stays open, and so settleable by `close`, until a write that settles it succeeds.
        """
        if self._closed:
            raise RuntimeError("the meter is closed")
        previous = self._open
        try:
            with self._tracer.start_as_current_span("ledger reserve"):
                reservation = await self._ledger.reserve(
                    self._user_id,
                    self._org_id,
                    estimated_input=estimated_input,
                    max_tokens=max_tokens,
                    first=self._calls == 0,
                    settle=(previous.reservation, previous.charge()) if previous else None,
                    tool_calls=self._tool_calls,
                )
        except LimitExceeded:
            # The ledger records the settle it carried before refusing.
            self._settle_locally(previous)
            raise
        self._tool_calls = 0
        self._settle_locally(previous)
        self._open = _Call(reservation, estimated_input)
        self._calls += 1
        return reservation.max_tokens

    def observe(self, usage: Usage, *, complete: bool) -> None:
        """The API's counts for the open call so far; `complete` once its final counts arrived."""
        call = self._current()
        call.reported_usage, call.complete = usage, complete

    def sending(self, sent: bool = True) -> None:
        """Whether the open call's request went out to the model (`False` again when the API refused it
        before reading it): a call cut short after that is charged at least its estimated input."""
        self._current().sent = sent

    def tool_ran(self) -> None:
        """One more tool call ran (for the usage report); recorded with the request's next write."""
        self._tool_calls += 1

    def streamed(self, nbytes: int) -> None:
        """`nbytes` more bytes of output (text or tool input) streamed by the open call."""
        self._current().streamed_bytes += nbytes

    def report(self) -> Usage:
        """The open call's charge, for its `usage` event (it counts as reported)."""
        call = self._current()
        call.reported = True
        return call.charge()

    def unreported(self) -> Usage | None:
        """The charge of an open call cut short before its `usage` event went out (then it counts as
        reported), or None."""
        if self._open is None or self._open.reported:
            return None
        return self.report()

    async def close(self) -> None:
        """Settle the open call with its charge. Once: later calls do nothing. Never raises for the store:
        a settle that cannot be written is logged by the ledger and leaves the reservation counted."""
        if self._closed:
            return
        self._closed = True
        call, self._open = self._open, None
        if call is None:
            return
        try:
            with self._tracer.start_as_current_span("ledger settle"):
                await self._ledger.settle(call.reservation, call.charge(), tool_calls=self._tool_calls)
        except Unavailable:
            return
        finally:
            self._settled += call.charge()

    def _current(self) -> _Call:
        if self._open is None:
            raise RuntimeError("no model call is reserved")
        return self._open

    def _settle_locally(self, call: _Call | None) -> None:
        if call is not None:
            self._settled += call.charge()
        self._open = None

"""What one request writes to its conversation, and when.

The start (the conversation's state naming the request in flight, and what the user sent) is written while
the model starts answering, so it costs no round trip before the first token. The end (every message the
request added, and the calls it left waiting for approval) is written before the lock is released, so the
user's next message, admitted right after, reads a conversation that has it. A write that fails is logged
and counted; the answer is still delivered, and nothing is charged twice (the quota is the meter's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from .agent import Turn
from .approval import PendingCall
from .context import Message
from .conversations import Conversation, ConversationStore
from .errors import ChatbotError
from .observability import RequestMetrics, logger


@dataclass
class Transcript:
    """The conversation records of one request: `begin` at its start, `finish` at its end."""

    store: ConversationStore
    conversation: Conversation
    request_id: str
    turn: Turn
    seed: list[Message] = field(default_factory=list)
    """Messages a new conversation starts with (the legacy `history`)."""
    declined: list[PendingCall] = field(default_factory=list)
    """Calls that were waiting and that this request's new message declines."""
    _begun: anyio.Event = field(default_factory=anyio.Event, init=False)
    _beginning: bool = field(default=False, init=False)
    _opening: list[Message] = field(default_factory=list, init=False)
    _written: int = field(default=0, init=False)
    _failed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        # Taken when the request is admitted (the turn is prepared): what it starts with.
        self._opening = [*self.seed, *self.turn.added]
        self._written = len(self.turn.added)

    async def begin(self) -> None:
        """Write the conversation's state and the messages the request starts with; forget the calls its
        message declines. Once: a second call waits for the first."""
        if self._beginning:
            await self._begun.wait()
            return
        self._beginning = True
        try:
            await self.store.begin(self.conversation, self._opening, self.request_id)
        except ChatbotError as exc:
            self._lost("begin", exc)
        finally:
            self._begun.set()
        if self.declined and not self._failed:
            try:
                await self.store.take_pending(self.conversation, self.declined)
            except ChatbotError as exc:
                logger.warning(
                    "declined calls of conversation %s still listed: %s", self.conversation.id, exc
                )

    async def finish(self) -> None:
        """Write what the request added since `begin` (begun now if nothing began it, as when the request
        ended before the model said anything), the calls it left waiting, and the state."""
        await self.begin()
        if self._failed:
            return
        try:
            await self.store.finish(
                self.conversation, self.turn.added[self._written :], self.turn.pending, self.request_id
            )
        except ChatbotError as exc:
            self._lost("finish", exc)

    def _lost(self, step: str, exc: ChatbotError) -> None:
        self._failed = True
        logger.error(
            "conversation %s not saved (%s of request %s): %s",
            self.conversation.id,
            step,
            self.request_id,
            exc.message,
        )
        RequestMetrics.event("ConversationSaveFailed")

"""The events of each request, kept for a while so a client can re-attach after a dropped connection.

Every event of a request has an id (1, 2, ...). The request's writer appends them as it sends them; a
client that lost its connection (or reloaded the page) asks for the events after the last id it saw, gets
the ones kept, then follows the live ones until the request's final `done` or `error`. Each conversation
remembers its latest request. Events are kept `retention_seconds` after the request ends.

Two implementations: `redis` (Redis Streams, shared by every instance, so a client may re-attach on another
one; the production one) and `memory` (one process, for development). `create_journal` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

Entry = tuple[int, dict[str, Any]]
"""An event with its id."""


@dataclass(frozen=True)
class Latest:
    """A conversation's latest request, and whose it is (`<org>#<user>`): until the request has written
    its conversation, the journal is where a re-attaching client's ownership is checked."""

    request_id: str
    owner: str


class Journal(Protocol):
    """Where requests' events are kept for re-attaching."""

    async def open(self, conversation_id: str, request_id: str, owner: str, lifetime_seconds: float) -> None:
        """Start keeping `request_id`'s events, as `conversation_id`'s latest request, `owner`'s.
        `lifetime_seconds` bounds how long they are kept should the request never end (its process died)."""
        ...

    async def append(self, request_id: str, entries: list[Entry], *, closing: bool = False) -> None:
        """Keep `entries`, in order, after those kept already; `closing` when they end the request (then
        as `close`, in the same round trip)."""
        ...

    async def close(self, request_id: str) -> None:
        """The request has ended: keep its events `retention_seconds` from now."""
        ...

    async def discard(self, request_id: str) -> None:
        """Forget a request that never started streaming (refused after its journal was opened)."""
        ...

    async def latest(self, conversation_id: str) -> Latest | None:
        """The conversation's latest request whose events are still kept, if any."""
        ...

    async def last(self, request_id: str) -> Entry | None:
        """The last event kept of the request (None when none is kept)."""
        ...

    async def read(self, request_id: str, after: int, wait_seconds: float) -> list[Entry] | None:
        """The kept events after id `after`; when there are none yet, wait up to `wait_seconds` for some.
        None when the request's events are no longer kept (or never were)."""
        ...

    async def aclose(self) -> None:
        """Close connections."""
        ...


def create_journal(redis_url: str | None, retention_seconds: float) -> Journal:
    """The Redis journal when `redis_url` is set, else the in-memory one."""
    if redis_url:
        from chatbot.journal.redis import RedisJournal

        return RedisJournal(redis_url, retention_seconds)
    from chatbot.journal.memory import MemoryJournal

    return MemoryJournal(retention_seconds)


__all__ = ["Entry", "Journal", "Latest", "create_journal"]

"""The journal inside one process: for development and single-process runs only."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from chatbot.journal import Entry, Latest


@dataclass
class _Kept:
    entries: list[Entry] = field(default_factory=list)
    expires_at: float = 0.0
    grown: anyio.Event = field(default_factory=anyio.Event)


class MemoryJournal:
    """Events in a dict, expired lazily; waiting readers are woken by an event per request."""

    def __init__(self, retention_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._retention = retention_seconds
        self._clock = clock
        self._kept: dict[str, _Kept] = {}
        self._latest: dict[str, Latest] = {}

    def _live(self, request_id: str) -> _Kept | None:
        kept = self._kept.get(request_id)
        if kept is not None and self._clock() >= kept.expires_at:
            del self._kept[request_id]
            return None
        return kept

    def _forget_expired(self) -> None:
        for request_id in [r for r, kept in self._kept.items() if self._clock() >= kept.expires_at]:
            del self._kept[request_id]
        for conversation_id in [
            c for c, latest in self._latest.items() if latest.request_id not in self._kept
        ]:
            del self._latest[conversation_id]

    async def open(self, conversation_id: str, request_id: str, owner: str, lifetime_seconds: float) -> None:
        """Start keeping the request's events."""
        self._forget_expired()
        self._kept[request_id] = _Kept(expires_at=self._clock() + lifetime_seconds)
        self._latest[conversation_id] = Latest(request_id, owner)

    async def append(self, request_id: str, entries: list[Entry], *, closing: bool = False) -> None:
        """Keep `entries` and wake the readers waiting for them."""
        kept = self._live(request_id)
        if kept is None:
            return
        if entries:
            kept.entries.extend(entries)
            kept.grown.set()
            kept.grown = anyio.Event()
        if closing:
            await self.close(request_id)

    async def close(self, request_id: str) -> None:
        """Keep the request's events `retention_seconds` from now."""
        kept = self._live(request_id)
        if kept is not None:
            kept.expires_at = self._clock() + self._retention

    async def discard(self, request_id: str) -> None:
        """Forget the request."""
        self._kept.pop(request_id, None)

    async def latest(self, conversation_id: str) -> Latest | None:
        """The conversation's latest request still kept."""
        latest = self._latest.get(conversation_id)
        return latest if latest is not None and self._live(latest.request_id) is not None else None

    async def last(self, request_id: str) -> Entry | None:
        """The last event kept."""
        kept = self._live(request_id)
        return kept.entries[-1] if kept is not None and kept.entries else None

    async def read(self, request_id: str, after: int, wait_seconds: float) -> list[Entry] | None:
        """The kept events after `after`, waiting up to `wait_seconds` for the next ones."""
        kept = self._live(request_id)
        if kept is None:
            return None
        found = [entry for entry in kept.entries if entry[0] > after]
        if found:
            return found
        with anyio.move_on_after(wait_seconds):
            await kept.grown.wait()
        return [entry for entry in kept.entries if entry[0] > after]

    async def aclose(self) -> None:
        """Forget everything."""
        self._kept.clear()
        self._latest.clear()

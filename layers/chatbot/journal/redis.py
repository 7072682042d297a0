"""The journal in Redis Streams, shared by every instance: a client may re-attach on any of them.

Keys: `chatbot:events:<request id>`, a stream whose entry ids are `0-<event id>` and whose field `e` is the
event's JSON; and `chatbot:latest:<conversation id>`, the conversation's latest request id. Both expire:
while the request runs, after its longest possible life; once it has ended, `retention_seconds` later.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from chatbot.journal import Entry, Latest
from chatbot.redis_store import connection_pool, store_call

EVENTS_PREFIX = "chatbot:events:"
LATEST_PREFIX = "chatbot:latest:"
JOURNAL_STORE = "event store"


def events_key(request_id: str) -> str:
    """The stream of `request_id`'s events."""
    return EVENTS_PREFIX + request_id


def latest_key(conversation_id: str) -> str:
    """The key naming `conversation_id`'s latest request."""
    return LATEST_PREFIX + conversation_id


class RedisJournal:
    """Create once per process. It owns two connection pools: one for the quick commands that keep events,
    and one for readers blocked waiting for new events (a reader holds its connection for the whole wait,
    so readers sharing the writers' pool could leave running requests no connection to keep their events)."""

    def __init__(
        self,
        redis_url: str,
        retention_seconds: float,
        *,
        connect_timeout: float = 1.0,
        operation_timeout: float = 2.0,
        max_connections: int = 100,
        max_waiting_readers: int = 64,
    ) -> None:
        self._pool = connection_pool(
            redis_url, connect_timeout=connect_timeout, max_connections=max_connections
        )
        self._readers_pool = connection_pool(
            redis_url, connect_timeout=connect_timeout, max_connections=max_waiting_readers
        )
        self._redis: Redis[str] = Redis(connection_pool=self._pool, decode_responses=True)
        self._readers: Redis[str] = Redis(connection_pool=self._readers_pool, decode_responses=True)
        self._retention = max(1, round(retention_seconds))
        self._timeout = operation_timeout
        self._conversations: dict[str, str] = {}

    async def open(self, conversation_id: str, request_id: str, owner: str, lifetime_seconds: float) -> None:
        """Create the request's (empty) stream and make it the conversation's latest."""
        lifetime = max(1, round(lifetime_seconds))
        self._conversations[request_id] = conversation_id
        key = events_key(request_id)
        with self._bounded("open a request's journal"):
            async with self._redis.pipeline(transaction=True) as pipe:
                # An empty stream exists from the start, so a reader can tell "nothing yet" from "gone".
                pipe.xgroup_create(key, "created", id="0", mkstream=True)
                pipe.expire(key, lifetime)
                latest = json.dumps({"request_id": request_id, "owner": owner})
                pipe.set(latest_key(conversation_id), latest, ex=lifetime)
                await pipe.execute()

    async def append(self, request_id: str, entries: list[Entry], *, closing: bool = False) -> None:
        """Add `entries` to the request's stream (and close it, when `closing`) in one round trip. XADD
        keeps the stream's time to live, which `open` set."""
        if not entries and not closing:
            return
        key = events_key(request_id)
        with self._bounded("keep a request's events"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for event_id, evt in entries:
                    pipe.xadd(key, {"e": json.dumps(evt, ensure_ascii=True)}, id=f"0-{event_id}")
                if closing:
                    self._close(pipe, request_id)
                await pipe.execute()

    async def close(self, request_id: str) -> None:
        """Keep the request's events `retention_seconds` from now, and the conversation's pointer to them at
        least as long (never shorter: a newer request may have taken it over)."""
        with self._bounded("close a request's journal"):
            async with self._redis.pipeline(transaction=False) as pipe:
                self._close(pipe, request_id)
                await pipe.execute()

    def _close(self, pipe: Pipeline[str], request_id: str) -> None:
        conversation_id = self._conversations.pop(request_id, None)
        pipe.expire(events_key(request_id), self._retention)
        if conversation_id is not None:
            pipe.expire(latest_key(conversation_id), self._retention, gt=True)

    async def discard(self, request_id: str) -> None:
        """Delete the request's events (the conversation's pointer then leads nowhere: nothing to send)."""
        self._conversations.pop(request_id, None)
        with self._bounded("discard a request's journal"):
            await self._redis.delete(events_key(request_id))

    async def latest(self, conversation_id: str) -> Latest | None:
        """The conversation's latest request whose events are still kept."""
        with self._bounded("find a conversation's latest request"):
            raw = await self._redis.get(latest_key(conversation_id))
            if raw is None:
                return None
            latest = Latest(**json.loads(raw))
            if not await self._redis.exists(events_key(latest.request_id)):
                return None
        return latest

    async def last(self, request_id: str) -> Entry | None:
        """The last event kept."""
        with self._bounded("read a request's last event"):
            found = await self._redis.xrevrange(events_key(request_id), max="+", min="-", count=1)
        return _entries(found)[0] if found else None

    async def read(self, request_id: str, after: int, wait_seconds: float) -> list[Entry] | None:
        """The kept events after `after`, or a blocking read of the next ones for up to `wait_seconds`."""
        key = events_key(request_id)
        with self._bounded("read a request's events"):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.exists(key)
                pipe.xrange(key, min=f"(0-{after}", max="+")
                exists, found = await pipe.execute()
        if not exists:
            return None
        if found:
            return _entries(found)
        with self._bounded("wait for a request's events", extra=wait_seconds):
            answer = await self._readers.xread({key: f"0-{after}"}, block=max(1, round(wait_seconds * 1000)))
        return _entries(answer[0][1]) if answer else []

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._pool.disconnect()
        await self._readers_pool.disconnect()

    def _bounded(self, action: str, extra: float = 0.0) -> AbstractContextManager[None]:
        return store_call(action, self._timeout + extra, JOURNAL_STORE)


def _entries(raw: list[tuple[str, dict[str, str]]]) -> list[Entry]:
    return [(int(entry_id.split("-", 1)[1]), json.loads(fields["e"])) for entry_id, fields in raw]

"""The event journal, the same behaviour from both implementations (memory, and Redis Streams against the
real Redis): keeping a request's events, reading after an id, following live events, and expiry."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from chatbot.journal import Entry, Journal, create_journal
from chatbot.journal.memory import MemoryJournal
from chatbot.journal.redis import RedisJournal, events_key, latest_key
from redis.asyncio import Redis

WAIT = 5.0  # the bound on any wait that should end at once
LIFETIME = 300
RETENTION = 600


OWNER = "org_acme#user_alice"


async def latest_id(journal: Journal, conversation_id: str) -> str | None:
    """The conversation's latest request id (the owner is checked by its own test)."""
    latest = await journal.latest(conversation_id)
    return None if latest is None else latest.request_id


class Clock:
    """The memory journal's clock, moved by hand (monotonic seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Kit:
    """Journals of one implementation, fresh ids, and a way to know a reader is waiting for new events."""

    def __init__(self, kind: str, redis_url: str | None) -> None:
        self.kind = kind
        self.clock = Clock()
        self._url = redis_url
        # Every connection of this test's journals is named, so the test can see which of them block.
        self._client_name = f"journal-test-{uuid.uuid4().hex}"
        self._made: list[Journal] = []
        self._keys: list[str] = []
        self.raw: Redis | None = Redis.from_url(redis_url, decode_responses=True) if redis_url else None

    def journal(self, retention_seconds: float = RETENTION) -> Journal:
        made: Journal
        if self._url is None:
            made = MemoryJournal(retention_seconds, clock=self.clock)
        else:
            made = RedisJournal(f"{self._url}?client_name={self._client_name}", retention_seconds)
        self._made.append(made)
        return made

    def another(self, journal: Journal) -> Journal:
        """The journal as another instance sees it: for Redis a journal of its own (another Lambda instance);
        the memory journal is one process's, so it is the same one."""
        return journal if self._url is None else self.journal()

    def ids(self) -> tuple[str, str]:
        """A fresh conversation id and request id."""
        conversation_id, request_id = f"conv_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"
        self._keys += [events_key(request_id), latest_key(conversation_id)]
        return conversation_id, request_id

    def request_id(self) -> str:
        return self.ids()[1]

    async def readers_waiting(self, count: int = 1) -> None:
        """Return once `count` readers wait for new events (bounded)."""
        if self.raw is None:
            # The memory journal's readers wait on an event: once every task is blocked, they are waiting.
            await anyio.wait_all_tasks_blocked()
            return
        with anyio.fail_after(WAIT):
            while True:
                clients = await self.raw.client_list()
                blocked = [
                    c for c in clients if c.get("name") == self._client_name and "b" in c.get("flags", "")
                ]
                if len(blocked) >= count:
                    return
                await anyio.sleep(0.01)

    async def aclose(self) -> None:
        for made in self._made:
            await made.aclose()
        if self.raw is not None:
            if self._keys:
                await self.raw.delete(*self._keys)
            await self.raw.aclose()


@pytest.fixture(params=["memory", "redis"])
async def kit(request: pytest.FixtureRequest) -> AsyncIterator[Kit]:
    url: str | None = request.getfixturevalue("redis_url") if request.param == "redis" else None
    made = Kit(request.param, url)
    yield made
    await made.aclose()


def events(*ids: int) -> list[Entry]:
    return [(i, {"event": "text", "data": {"text": f"part {i}"}}) for i in ids]


async def opened(journal: Journal, kit: Kit, *ids: int) -> tuple[str, str]:
    """A request opened in a new conversation, with events `ids` appended."""
    conversation_id, request_id = kit.ids()
    await journal.open(conversation_id, request_id, OWNER, LIFETIME)
    if ids:
        await journal.append(request_id, events(*ids))
    return conversation_id, request_id


# ----------------------------------------------------------------------------------- keeping, reading


async def test_events_are_read_back_in_order_after_the_id_given(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit, 1, 2, 3, 4)
    assert await journal.read(request_id, 0, WAIT) == events(1, 2, 3, 4)
    assert await journal.read(request_id, 2, WAIT) == events(3, 4)
    assert await journal.read(request_id, 3, WAIT) == events(4)


async def test_events_appended_in_several_batches_are_kept_in_order(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit, 1)
    await journal.append(request_id, events(2, 3))
    await journal.append(request_id, [])
    await journal.append(request_id, events(4))
    assert await journal.read(request_id, 0, WAIT) == events(1, 2, 3, 4)


async def test_an_event_comes_back_exactly_as_it_was_kept(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit)
    evt = {
        "event": "tool_result",
        "data": {"name": "member_list", "content": "Zoë — 5 ✓", "n": [1, None, True]},
    }
    await journal.append(request_id, [(1, evt)])
    assert await journal.read(request_id, 0, WAIT) == [(1, evt)]
    assert await journal.last(request_id) == (1, evt)


async def test_a_read_with_nothing_new_waits_up_to_its_bound_and_returns_nothing(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit, 1, 2)
    started = time.monotonic()
    with anyio.fail_after(WAIT):
        assert await journal.read(request_id, 2, 0.3) == []
    assert time.monotonic() - started >= 0.25


async def test_a_read_that_may_not_wait_returns_at_once(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit)
    with anyio.fail_after(WAIT):
        assert await journal.read(request_id, 0, 0) == []


async def test_a_waiting_reader_gets_new_events_as_soon_as_they_are_appended(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit, 1, 2)
    got: list[list[Entry] | None] = []

    async def reader() -> None:
        got.append(await journal.read(request_id, 2, 60))

    started = time.monotonic()
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(reader)
            await kit.readers_waiting()
            assert got == []
            await journal.append(request_id, events(3, 4))
    assert time.monotonic() - started < WAIT
    # A batch may reach a waiting reader in parts (Redis wakes it after the first entry); the rest follows.
    [first] = got
    assert first and first == events(3, 4)[: len(first)]
    rest = await journal.read(request_id, first[-1][0], 0) if len(first) < 2 else []
    assert first + (rest or []) == events(3, 4)


async def test_every_waiting_reader_gets_the_new_events(kit: Kit) -> None:
    # A client re-attaching on another instance, while the first one still follows.
    writer = kit.journal()
    other = kit.another(writer)
    _, request_id = await opened(writer, kit)
    got: list[list[Entry] | None] = []

    async def reader(journal: Journal) -> None:
        got.append(await journal.read(request_id, 0, 60))

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(reader, writer)
            tasks.start_soon(reader, other)
            await kit.readers_waiting(2)
            await writer.append(request_id, events(1))
    assert got == [events(1), events(1)]


async def test_an_unknown_request_has_no_events(kit: Kit) -> None:
    journal = kit.journal()
    request_id = kit.request_id()
    with anyio.fail_after(WAIT):
        assert await journal.read(request_id, 0, 0.2) is None
    assert await journal.last(request_id) is None


async def test_an_opened_request_without_events_yet_is_kept_but_has_no_last(kit: Kit) -> None:
    journal = kit.journal()
    conversation_id, request_id = await opened(journal, kit)
    assert await journal.read(request_id, 0, 0) == []
    assert await journal.last(request_id) is None
    assert await latest_id(journal, conversation_id) == request_id


async def test_last_is_the_last_event_kept(kit: Kit) -> None:
    journal = kit.journal()
    _, request_id = await opened(journal, kit, 1, 2)
    assert await journal.last(request_id) == events(2)[0]
    await journal.append(request_id, events(3, 4))
    assert await journal.last(request_id) == events(4)[0]


async def test_latest_is_the_conversations_newest_request(kit: Kit) -> None:
    journal = kit.journal()
    conversation_id, first = await opened(journal, kit, 1)
    assert await latest_id(journal, conversation_id) == first
    _, second = kit.ids()
    await journal.open(conversation_id, second, OWNER, LIFETIME)
    assert await latest_id(journal, conversation_id) == second
    # The earlier request's events are still there for whoever asks by its id.
    assert await journal.read(first, 0, WAIT) == events(1)


async def test_conversations_have_their_own_latest_request(kit: Kit) -> None:
    journal = kit.journal()
    one, first = await opened(journal, kit)
    two, second = await opened(journal, kit)
    assert (await latest_id(journal, one), await latest_id(journal, two)) == (first, second)
    assert await latest_id(journal, f"conv_never_{uuid.uuid4().hex}") is None


async def test_a_closed_request_keeps_its_events(kit: Kit) -> None:
    journal = kit.journal()
    conversation_id, request_id = await opened(journal, kit, 1, 2)
    await journal.close(request_id)
    assert await journal.read(request_id, 0, WAIT) == events(1, 2)
    assert await journal.last(request_id) == events(2)[0]
    assert await latest_id(journal, conversation_id) == request_id


async def test_closing_an_unknown_request_is_harmless(kit: Kit) -> None:
    journal = kit.journal()
    request_id = kit.request_id()
    await journal.close(request_id)
    assert await journal.read(request_id, 0, 0) is None


# ------------------------------------------------------------------------------------------ expiry


async def test_memory_events_of_a_request_that_never_ends_are_kept_for_its_lifetime() -> None:
    clock = Clock()
    journal = MemoryJournal(RETENTION, clock=clock)
    await journal.open("conv_1", "req_1", OWNER, LIFETIME)
    await journal.append("req_1", events(1))
    clock.advance(LIFETIME - 1)
    assert await journal.last("req_1") == events(1)[0]
    clock.advance(1)
    assert await journal.read("req_1", 0, 0) is None
    assert await journal.last("req_1") is None
    assert await latest_id(journal, "conv_1") is None


async def test_memory_events_are_kept_for_the_retention_from_the_close() -> None:
    clock = Clock()
    journal = MemoryJournal(RETENTION, clock=clock)
    await journal.open("conv_1", "req_1", OWNER, LIFETIME)
    await journal.append("req_1", events(1))
    clock.advance(100)
    await journal.close("req_1")
    clock.advance(RETENTION - 1)
    assert await journal.read("req_1", 0, 0) == events(1)
    assert await latest_id(journal, "conv_1") == "req_1"
    clock.advance(1)
    assert await journal.read("req_1", 0, 0) is None
    assert await latest_id(journal, "conv_1") is None


async def test_memory_an_expired_request_is_forgotten_when_another_opens() -> None:
    clock = Clock()
    journal = MemoryJournal(RETENTION, clock=clock)
    await journal.open("conv_1", "req_1", OWNER, LIFETIME)
    clock.advance(LIFETIME)
    await journal.open("conv_2", "req_2", OWNER, LIFETIME)
    assert await latest_id(journal, "conv_1") is None
    assert await latest_id(journal, "conv_2") == "req_2"


async def test_memory_append_to_an_expired_request_keeps_nothing() -> None:
    clock = Clock()
    journal = MemoryJournal(RETENTION, clock=clock)
    await journal.open("conv_1", "req_1", OWNER, 10)
    clock.advance(10)
    await journal.append("req_1", events(1))
    assert await journal.read("req_1", 0, 0) is None


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_journal(redis_url: str, raw: Redis) -> AsyncIterator[tuple[RedisJournal, list[str]]]:
    """A Redis journal with a short retention (5 s), and the keys to clean up."""
    journal = RedisJournal(redis_url, 5)
    keys: list[str] = []
    yield journal, keys
    if keys:
        await raw.delete(*keys)
    await journal.aclose()


def redis_ids(keys: list[str]) -> tuple[str, str]:
    conversation_id, request_id = f"conv_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"
    keys += [events_key(request_id), latest_key(conversation_id)]
    return conversation_id, request_id


async def test_redis_keys_of_a_running_request_expire_after_its_lifetime(
    redis_journal: tuple[RedisJournal, list[str]], raw: Redis
) -> None:
    journal, keys = redis_journal
    conversation_id, request_id = redis_ids(keys)
    await journal.open(conversation_id, request_id, OWNER, LIFETIME)
    assert LIFETIME - 2 <= await raw.ttl(events_key(request_id)) <= LIFETIME
    assert LIFETIME - 2 <= await raw.ttl(latest_key(conversation_id)) <= LIFETIME
    assert json.loads(await raw.get(latest_key(conversation_id))) == {
        "request_id": request_id,
        "owner": OWNER,
    }
    await journal.append(request_id, events(1, 2))
    # Appending keeps the lifetime (a retention of 5 s would drop a request still running).
    assert LIFETIME - 2 <= await raw.ttl(events_key(request_id)) <= LIFETIME
    assert await raw.xlen(events_key(request_id)) == 2


async def test_redis_events_are_kept_for_the_retention_once_the_request_closes(
    redis_journal: tuple[RedisJournal, list[str]], raw: Redis
) -> None:
    journal, keys = redis_journal
    conversation_id, request_id = redis_ids(keys)
    await journal.open(conversation_id, request_id, OWNER, LIFETIME)
    await journal.append(request_id, events(1))
    await journal.close(request_id)
    assert 0 < await raw.ttl(events_key(request_id)) <= 5
    assert await journal.read(request_id, 0, 0) == events(1)


async def test_redis_the_latest_request_is_named_as_long_as_its_events_are_kept(
    redis_url: str, raw: Redis
) -> None:
    # A lifetime shorter than the retention: the request ended early, and its events are kept the
    # retention from then; the conversation must name it for as long.
    journal = RedisJournal(redis_url, RETENTION)
    conversation_id, request_id = f"conv_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"
    try:
        await journal.open(conversation_id, request_id, OWNER, 30)
        await journal.close(request_id)
        events_ttl = await raw.ttl(events_key(request_id))
        assert RETENTION - 2 <= events_ttl <= RETENTION
        assert await raw.ttl(latest_key(conversation_id)) >= events_ttl - 2
    finally:
        await raw.delete(events_key(request_id), latest_key(conversation_id))
        await journal.aclose()


async def test_memory_the_latest_request_is_named_as_long_as_its_events_are_kept() -> None:
    clock = Clock()
    journal = MemoryJournal(RETENTION, clock=clock)
    await journal.open("conv_1", "req_1", OWNER, 30)
    await journal.close("req_1")
    clock.advance(RETENTION - 1)
    assert await latest_id(journal, "conv_1") == "req_1"


async def test_redis_once_the_events_have_expired_the_request_is_gone(
    redis_journal: tuple[RedisJournal, list[str]], raw: Redis
) -> None:
    journal, keys = redis_journal
    conversation_id, request_id = redis_ids(keys)
    await journal.open(conversation_id, request_id, OWNER, LIFETIME)
    await journal.append(request_id, events(1))
    await raw.delete(events_key(request_id))  # what the TTL does, without waiting for it
    assert await journal.read(request_id, 0, 0) is None
    assert await journal.last(request_id) is None
    assert await latest_id(journal, conversation_id) is None


# ------------------------------------------------------------------------------------------ choosing


def test_the_redis_journal_is_chosen_when_redis_is_configured_else_the_memory_one() -> None:
    assert isinstance(create_journal(None, 60), MemoryJournal)
    assert isinstance(create_journal("", 60), MemoryJournal)
    chosen: Any = create_journal("redis://127.0.0.1:6379/0", 60)
    assert isinstance(chosen, RedisJournal)


async def test_the_latest_request_names_its_owner(kit: Kit) -> None:
    journal = kit.journal()
    conversation_id, request_id = kit.ids()
    await journal.open(conversation_id, request_id, "org_globex#user_carol", 60)
    latest = await journal.latest(conversation_id)
    assert latest is not None and (latest.request_id, latest.owner) == (request_id, "org_globex#user_carol")


async def test_redis_readers_waiting_for_events_never_hold_up_keeping_events(
    redis_url: str, raw: Redis
) -> None:
    # Found under load: a re-attached reader blocks on XREAD holding a pooled connection, so as many waiting
    # readers as the pool has connections left every running request unable to keep its events.
    name = f"journal-starve-{uuid.uuid4().hex}"
    journal = RedisJournal(f"{redis_url}?client_name={name}", RETENTION, max_connections=2)
    conversation_id, request_id = f"conv_{uuid.uuid4().hex}", f"req_{uuid.uuid4().hex}"
    waiting = f"req_{uuid.uuid4().hex}"
    try:
        await journal.open(f"conv_{uuid.uuid4().hex}", waiting, OWNER, LIFETIME)
        await journal.open(conversation_id, request_id, OWNER, LIFETIME)
        async with anyio.create_task_group() as readers:
            for _ in range(4):
                readers.start_soon(journal.read, waiting, 0, 3.0)
            await blocked_clients(raw, name, 2)
            await journal.append(request_id, events(1, 2))
            readers.cancel_scope.cancel()
        assert await journal.read(request_id, 0, 0) == events(1, 2)
    finally:
        await raw.delete(events_key(waiting), events_key(request_id), latest_key(conversation_id))
        await journal.aclose()


async def blocked_clients(raw: Redis, name: str, count: int) -> None:
    """Return once `count` connections named `name` are blocked in Redis (bounded)."""
    with anyio.fail_after(WAIT):
        while True:
            clients = await raw.client_list()
            if len([c for c in clients if c.get("name") == name and "b" in c.get("flags", "")]) >= count:
                return
            await anyio.sleep(0.01)

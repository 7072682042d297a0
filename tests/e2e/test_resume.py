"""Streams that survive a dropped connection: a request runs to its end without its client, and a client
re-attaches (on any instance sharing Redis) with `Last-Event-ID`, getting every event once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import redis

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.e2e.sse import Stream, id_frames, read_stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply

SLOW = Reply.text(" ".join(f"word{n}" for n in range(12)), chunks=12).with_delay(0.05)


async def drop_after_first_text(
    server: LiveServer, body: dict[str, Any] | None = None
) -> list[tuple[int, Any]]:
    """POST a message, read until the first `text` event, then hang up; the frames seen (id, event)."""
    seen: list[tuple[int, Any]] = []
    async with (
        server.client() as client,
        client.stream(
            "POST", "/api/chatbot/message", json=body or {"message": "tell me"}, headers=server.auth()
        ) as response,
    ):
        async for frame in id_frames(response):
            if frame is None:
                continue
            seen.append(frame)
            if frame[1]["type"] == "text":
                break
    return seen


async def reattach(
    server: LiveServer, conversation_id: str, after: int | None, *, query: bool = False
) -> Stream:
    headers = dict(server.auth())
    params = {}
    if after is not None and query:
        params["after"] = str(after)
    elif after is not None:
        headers["last-event-id"] = str(after)
    async with (
        server.client() as client,
        client.stream(
            "GET", f"/api/chatbot/conversations/{conversation_id}/stream", headers=headers, params=params
        ) as response,
    ):
        if response.status_code == 204:
            return Stream(status=204, headers=response.headers)
        return await read_stream(response)


async def test_a_client_that_drops_re_attaches_and_gets_every_event_once_in_order(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(SLOW)
    seen = await drop_after_first_text(server)
    conversation_id = seen[0][1]["id"]

    rest = await reattach(server, conversation_id, seen[-1][0])

    assert rest.status == 200
    assert rest.ids[0] == seen[-1][0] + 1, "resumes right after the last event seen"
    whole = await reattach(server, conversation_id, 0)
    assert [e for _, e in seen] + rest.events == whole.events
    assert whole.ids == list(range(1, len(whole.events) + 1))
    assert whole.text == " ".join(f"word{n}" for n in range(12))
    assert whole.last == {"type": "done", "stop_reason": "end_turn", "iterations": 1}
    assert len(fake_anthropic.message_requests) == 1, "the answer was not asked for again"


async def test_after_a_finished_request_the_stream_has_nothing_more_to_send(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    done = await server.message("hi")
    last_id = done.ids[-1]
    assert (await reattach(server, done.conversation_id, last_id)).status == 204
    replay = await reattach(server, done.conversation_id, 2, query=True)
    assert replay.status == 200 and replay.ids[0] == 3 and replay.events == done.events[2:]


async def test_reading_a_conversation_mid_request_shows_the_request_to_re_attach_to(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(SLOW)
    seen = await drop_after_first_text(server)
    conversation_id = seen[0][1]["id"]
    async with server.client() as client:
        view = (
            await client.get(f"/api/chatbot/conversations/{conversation_id}", headers=server.auth())
        ).json()
    assert view["active_request"] is not None and view["active_request"]["last_event_id"] >= seen[-1][0]
    assert view["messages"] == [{"role": "user", "content": "tell me"}], "the answer comes through /stream"
    await reattach(server, conversation_id, seen[-1][0])
    async with server.client() as client:
        view = (
            await client.get(f"/api/chatbot/conversations/{conversation_id}", headers=server.auth())
        ).json()
    assert view["active_request"] is None and view["messages"][-1]["role"] == "assistant"


async def test_a_conversation_whose_events_are_no_longer_kept_has_nothing_to_send(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, redis_url: str
) -> None:
    server = start_server(redis_url=redis_url)
    done = await server.message("hi")
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(f"chatbot:latest:{done.conversation_id}")
    finally:
        client.close()
    assert (await reattach(server, done.conversation_id, 0)).status == 204


async def test_a_client_re_attaches_on_another_instance_sharing_redis(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, redis_url: str
) -> None:
    first = start_server(redis_url=redis_url)
    second = start_server(
        redis_url=redis_url,
        app_table=first.settings.app_table,
        chatbot_usage_table=first.settings.chatbot_usage_table,
        chatbot_conversations_table=first.settings.chatbot_conversations_table,
        chatbot_audit_table=first.settings.chatbot_audit_table,
    )
    await first.warm()
    await second.warm()
    fake_anthropic.enqueue(SLOW)
    seen = await drop_after_first_text(first)

    rest = await reattach(second, seen[0][1]["id"], seen[-1][0])

    assert rest.status == 200 and rest.ids[0] == seen[-1][0] + 1
    assert "".join(e["text"] for _, e in seen if e["type"] == "text") + rest.text == " ".join(
        f"word{n}" for n in range(12)
    )
    assert rest.last["type"] == "done"


async def test_a_follower_gets_the_live_events_as_the_request_writes_them(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(SLOW)
    async with (
        server.client() as poster,
        poster.stream(
            "POST", "/api/chatbot/message", json={"message": "tell me"}, headers=server.auth()
        ) as original,
    ):
        frames = id_frames(original)
        conversation = await anext(frames)
        assert conversation is not None
        follower = asyncio.create_task(reattach(server, conversation[1]["id"], conversation[0]))
        own = [f async for f in frames if f is not None]
    followed = await asyncio.wait_for(follower, timeout=20)
    assert followed.events == [e for _, e in own]


async def test_stop_still_ends_a_request_early_for_every_client(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.hang(after_events=4))
    seen = await drop_after_first_text(server)
    async with server.client() as client:
        assert (await client.post("/api/chatbot/cancel", headers=server.auth())).json() == {"cancelled": True}
    rest = await reattach(server, seen[0][1]["id"], seen[-1][0])
    assert rest.last == {"type": "done", "stop_reason": "cancelled", "iterations": 1}
    await fake_anthropic.wait_for_disconnects_async(1)


async def test_re_attaching_needs_a_valid_token(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url) as client:
        response = await client.get("/api/chatbot/conversations/conv_x/stream")
    assert response.status_code == 401


async def test_a_request_refused_before_its_stream_leaves_nothing_to_re_attach_to(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(chatbot_daily_token_limit_user=8_000)
    fake_anthropic.enqueue(Reply.text("x" * 40_000))  # spends what is left of the day
    first = await server.message("hi")
    refused = await server.message(json_body={"message": "more", "conversation_id": first.conversation_id})
    assert refused.status == 429
    # The refused request's journal was discarded: re-attaching finds nothing (and does not wait for it).
    assert (await asyncio.wait_for(reattach(server, first.conversation_id, 0), timeout=10)).status == 204

"""Conversations kept on the server, over HTTP: created by a first message, continued with the context the
model needs, listed, read, renamed and deleted by their owner only; long ones trimmed, never refused."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.e2e.sse import Stream, read_stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply

ORGS = {"user_carol": "org_globex", "user_dave": "org_globex"}


def auth(server: LiveServer, user: str) -> dict[str, str]:
    return server.auth(user=user, org=ORGS.get(user, "org_acme"))


async def say(
    server: LiveServer, text: str, conversation_id: str | None = None, user: str = "user_alice"
) -> Stream:
    body: dict[str, Any] = {"message": text}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return await server.message(json_body=body, user=user, org=ORGS.get(user, "org_acme"))


async def get(server: LiveServer, path: str, user: str = "user_alice", **params: Any) -> httpx.Response:
    async with server.client() as client:
        return await client.get(path, headers=auth(server, user), params=params)


def texts(request_body: dict[str, Any]) -> list[str]:
    """The text of every message the model was sent, in order."""
    out = []
    for message in request_body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        out += [b["text"] for b in blocks if b.get("type") == "text"]
    return out


async def test_a_first_message_creates_a_conversation_named_after_it_and_its_first_event_says_so(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("There are three."))
    stream = await say(server, "How many members do we have in this organization of ours?")
    assert stream.status == 200
    assert stream.events[0] == {
        "type": "conversation",
        "id": stream.conversation_id,
        "title": "How many members do we have in this organization of ours?",
    }
    assert stream.ids[0] == 1
    listed = (await get(server, "/api/chatbot/conversations")).json()
    [summary] = [c for c in listed["conversations"] if c["id"] == stream.conversation_id]
    assert summary["awaiting_approval"] is False and summary["created_at"].endswith("Z")


async def test_a_continued_conversation_gives_the_model_its_earlier_turns_rebuilt_from_the_store(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_use("member_get", {"email": "bob@acme.test"}, text_before="Looking."),
        Reply.text("Bob is a member."),
        Reply.text("You asked about Bob."),
    )
    first = await say(server, "What is Bob's role?")
    second = await say(server, "Who did I ask about?", first.conversation_id)

    assert second.conversation_id == first.conversation_id
    sent = fake_anthropic.message_requests[2].body
    assert texts(sent) == ["What is Bob's role?", "Looking.", "Bob is a member.", "Who did I ask about?"]
    kinds = [b["type"] for m in sent["messages"] if isinstance(m["content"], list) for b in m["content"]]
    assert kinds.count("tool_use") == 1 and kinds.count("tool_result") == 1, "the tool call went back too"


async def test_reading_a_conversation_shows_its_messages_and_tool_calls_with_their_outcome(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_use("member_get", {"email": "bob@acme.test"}, text_before="Looking."),
        Reply.text("Bob is a member."),
    )
    stream = await say(server, "What is Bob's role?")
    response = await get(server, f"/api/chatbot/conversations/{stream.conversation_id}")
    assert response.status_code == 200
    conversation = response.json()
    assert conversation["id"] == stream.conversation_id and conversation["active_request"] is None
    user, call_turn, answer = conversation["messages"]
    assert user == {"role": "user", "content": "What is Bob's role?"}
    assert call_turn["role"] == "assistant" and call_turn["content"] == "Looking."
    [tool_call] = call_turn["tool_calls"]
    assert (tool_call["name"], tool_call["input"], tool_call["status"]) == (
        "member_get",
        {"email": "bob@acme.test"},
        "ok",
    )
    assert "bob@acme.test" in tool_call["content"]
    assert answer == {"role": "assistant", "content": "Bob is a member.", "tool_calls": []}


async def test_conversations_are_listed_newest_first_a_page_at_a_time(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    ids = []
    for n in range(3):
        fake_anthropic.enqueue(Reply.text("ok"))
        ids.append((await say(server, f"question {n}", user="user_dave")).conversation_id)
    fake_anthropic.enqueue(Reply.text("ok"))
    await say(server, "again", ids[0], user="user_dave")  # the oldest becomes the most recent

    first = (await get(server, "/api/chatbot/conversations", user="user_dave", limit=2)).json()
    second = (
        await get(
            server, "/api/chatbot/conversations", user="user_dave", limit=2, cursor=first["next_cursor"]
        )
    ).json()
    assert [c["id"] for c in first["conversations"] + second["conversations"]] == [ids[0], ids[2], ids[1]]
    assert (
        second["next_cursor"] is None
        or (
            await get(server, "/api/chatbot/conversations", user="user_dave", cursor=second["next_cursor"])
        ).json()["conversations"]
        == []
    )


async def test_a_conversation_is_renamed_and_deleted_for_good_by_its_owner(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("ok"))
    conversation_id = (await say(server, "hello")).conversation_id
    path = f"/api/chatbot/conversations/{conversation_id}"
    async with server.client() as client:
        renamed = await client.patch(path, headers=server.auth(), json={"title": "Team questions"})
        assert renamed.status_code == 200 and renamed.json()["title"] == "Team questions"
        assert (await client.get(path, headers=server.auth())).json()["title"] == "Team questions"
        assert (await client.delete(path, headers=server.auth())).status_code == 204
        gone = await client.get(path, headers=server.auth())
        again = await client.delete(path, headers=server.auth())
    assert gone.status_code == 404 and again.status_code == 404
    listed = (await get(server, "/api/chatbot/conversations")).json()["conversations"]
    assert conversation_id not in [c["id"] for c in listed]


async def test_someone_elses_conversation_is_as_unknown_as_a_missing_one(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("private"))
    alices = (await say(server, "secret plans")).conversation_id
    path = f"/api/chatbot/conversations/{alices}"
    missing = await get(server, "/api/chatbot/conversations/conv_nope", user="user_bob")
    responses = [
        await get(server, path, user="user_bob"),  # another member of Acme
        await get(server, path, user="user_carol"),  # another organization
        await get(server, path + "/stream", user="user_bob"),
        missing,
    ]
    async with server.client() as client:
        responses.append(await client.patch(path, headers=auth(server, "user_bob"), json={"title": "x"}))
        responses.append(await client.delete(path, headers=auth(server, "user_bob")))
    continued = await say(server, "tell me", alices, user="user_bob")
    assert continued.status == 404 and continued.error_body == missing.json()
    for response in responses:
        assert (response.status_code, response.json()) == (404, missing.json())
    assert missing.json() == {"error": "not_found", "message": "No such conversation."}
    assert fake_anthropic.message_requests[-1].body["messages"][-1]["content"][0]["text"] == "secret plans"


async def test_the_legacy_history_seeds_a_new_conversation(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("Your name is Al."))
    history = [{"role": "user", "content": "my name is Al"}, {"role": "assistant", "content": "Hi Al"}]
    stream = await server.message("what is my name?", history=history)
    conversation = (await get(server, f"/api/chatbot/conversations/{stream.conversation_id}")).json()
    assert conversation["title"] == "my name is Al"
    assert [m["content"] for m in conversation["messages"]] == [
        "my name is Al",
        "Hi Al",
        "what is my name?",
        "Your name is Al.",
    ]


async def test_a_conversation_longer_than_the_context_budget_drops_its_oldest_turns_never_a_413(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(chatbot_context_token_budget=4000)  # about one earlier turn and the new message
    fake_anthropic.set_responder(lambda request: Reply.text("x" * 900))
    conversation_id = None
    for n in range(8):
        stream = await say(server, f"turn {n} " + "y" * 900, conversation_id)
        assert stream.status == 200 and stream.last["type"] == "done", stream.error_body
        conversation_id = stream.conversation_id
    last = texts(fake_anthropic.message_requests[-1].body)
    assert last[-1].startswith("turn 7")
    assert not any(t.startswith("turn 0") for t in last), "the oldest turns were dropped"
    assert any(t.startswith("turn 6") for t in last), "the newest whole turn was kept"
    stored = (await get(server, f"/api/chatbot/conversations/{conversation_id}")).json()
    assert len(stored["messages"]) == 16, "the store keeps everything; only the context is trimmed"


async def test_malformed_paging_and_titles_are_400s_naming_the_field(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("ok"))
    conversation_id = (await say(server, "hello")).conversation_id
    bad_limit = await get(server, "/api/chatbot/conversations", limit=0)
    bad_cursor = await get(server, "/api/chatbot/conversations", cursor="bm90IGEgY3Vyc29y")
    async with server.client() as client:
        path = f"/api/chatbot/conversations/{conversation_id}"
        empty_title = await client.patch(path, headers=server.auth(), json={"title": ""})
        extra = await client.patch(path, headers=server.auth(), json={"title": "a", "owner": "me"})
        bad_after = await client.get(path + "/stream", headers={**server.auth(), "last-event-id": "x"})
    assert (bad_limit.status_code, bad_limit.json()["error"]) == (400, "invalid_request")
    assert "limit" in bad_limit.json()["message"]
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["message"]
    assert empty_title.status_code == 400 and "title" in empty_title.json()["message"]
    assert extra.status_code == 400 and "owner" in extra.json()["message"]
    assert bad_after.status_code == 400 and "Last-Event-ID" in bad_after.json()["message"]


async def test_a_viewer_has_no_conversations_to_reach(server: LiveServer) -> None:
    response = await get(server, "/api/chatbot/conversations", user="user_erin")
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


async def test_answer_ids_count_from_one_and_the_stream_reads_with_its_framing(server: LiveServer) -> None:
    async with (
        server.client() as client,
        client.stream(
            "POST", "/api/chatbot/message", json={"message": "hi"}, headers=server.auth()
        ) as response,
    ):
        stream = await read_stream(response)
    assert stream.ids == list(range(1, len(stream.events) + 1))

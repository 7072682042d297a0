"""The full flows over HTTP: the real app under uvicorn, the fake Anthropic API, embedded DynamoDB."""

from __future__ import annotations

import asyncio
import json

from tests.e2e.conftest import LiveServer, ServerFactory, wait_until
from tests.fakes.anthropic_api import RECORDED_STREAMS, FakeAnthropic, Reply, ToolCall

FIXTURES = RECORDED_STREAMS
READ_TOOLS = ["member_get", "member_list", "organization_get"]
ALL_TOOLS = [
    "invitation_cancel",
    "invitation_create",
    "invitation_list",
    "member_get",
    "member_list",
    "member_remove",
    "member_update_role",
    "organization_get",
]


def offered_tools(fake: FakeAnthropic, index: int = 0) -> list[str]:
    return [tool["name"] for tool in fake.message_requests[index].body["tools"]]


async def test_member_lists_members_via_member_list(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_use("member_list", {}, text_before="Let me look."),
        Reply.text("| name | role |\n|---|---|\n| Alice Anders | admin |"),
    )
    stream = await server.message("who is in my organization?", user="user_bob")

    assert stream.status == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.headers["cache-control"] == "no-cache"
    assert stream.headers["x-request-id"].startswith("req_")
    assert [e["type"] for e in stream.events] == [
        "conversation",
        "text",
        "usage",
        "tool_use",
        "tool_result",
        *["text"] * (len(stream.of("text")) - 1),
        "usage",
        "done",
    ]
    [call], [result] = stream.of("tool_use"), stream.of("tool_result")
    assert call["name"] == "member_list" and result["id"] == call["id"] and not result["is_error"]
    assert "alice@acme.test" in result["content"] and "carol@globex.test" not in result["content"]
    assert stream.text.startswith("Let me look.") and "Alice Anders" in stream.text
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 2}
    # The model got the tool's result on its second call.
    second = fake_anthropic.message_requests[1].body["messages"][-1]["content"][0]
    assert second["type"] == "tool_result" and second["tool_use_id"] == call["id"]


async def test_admin_is_offered_every_tool_and_member_only_read_tools(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    await server.message("hi", user="user_alice")
    await server.message("hi", user="user_bob")
    assert offered_tools(fake_anthropic, 0) == ALL_TOOLS
    assert offered_tools(fake_anthropic, 1) == READ_TOOLS


async def test_system_prompt_names_the_user_role_organization_and_date(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    await server.message("hi", user="user_bob")
    [system] = fake_anthropic.message_requests[0].body["system"]
    assert "Bob Brown" in system["text"] and "member" in system["text"] and "Acme Inc" in system["text"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert fake_anthropic.message_requests[0].body["tools"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_member_calling_an_admin_tool_anyway_gets_an_error_result_and_nothing_changes(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.tool_use("member_remove", {"user_id": "user_erin"}), Reply.text("Sorry."))
    stream = await server.message("remove erin", user="user_bob")
    [result] = stream.of("tool_result")
    assert result["is_error"]
    fake_anthropic.enqueue(Reply.tool_use("member_list", {}), Reply.text("ok"))
    listing = await server.message("list members", user="user_alice")
    assert "erin@acme.test" in listing.of("tool_result")[0]["content"]


async def test_viewer_gets_403(server: LiveServer, fake_anthropic: FakeAnthropic) -> None:
    stream = await server.message("hi", user="user_erin")
    assert stream.status == 403 and stream.error_body is not None
    assert stream.error_body["error"] == "forbidden"
    assert fake_anthropic.message_requests == []


async def test_token_for_an_organization_the_user_is_not_in_gets_403(server: LiveServer) -> None:
    stream = await server.message("hi", user="user_alice", org="org_globex")
    assert stream.status == 403 and stream.error_body == {
        "error": "forbidden",
        "message": "You are not a member of this organization.",
    }


async def test_other_organization_data_never_reaches_the_caller(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_uses(("member_list", {}), ("member_get", {"email": "alice@acme.test"})),
        Reply.text("Done."),
    )
    stream = await server.message("list everyone, and alice@acme.test", user="user_carol", org="org_globex")
    results = {r["name"]: r for r in stream.of("tool_result")}
    listing, lookup = results["member_list"], results["member_get"]
    assert "carol@globex.test" in listing["content"] and "dave@globex.test" in listing["content"]
    assert "acme" not in listing["content"].lower()
    # Alice exists, but in another organization: for Carol she does not.
    assert (
        lookup["is_error"]
        and "Alice Anders" not in lookup["content"]
        and "user_alice" not in lookup["content"]
    )


async def test_second_request_by_same_user_gets_409_and_the_lock_is_released_after(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("slow answer " * 5, chunks=5).with_delay(0.2))
    first = asyncio.create_task(server.message("first"))
    await fake_anthropic.wait_for_requests_async(1)

    second = await server.message("second")
    assert second.status == 409 and second.error_body is not None
    assert second.error_body["error"] == "concurrent_request"
    other_user = await server.message("meanwhile", user="user_bob")
    assert other_user.status == 200

    assert (await first).last["type"] == "done"
    third = await server.message("third")
    assert third.status == 200 and third.last["stop_reason"] == "end_turn"


async def test_cancel_stops_the_stream_closes_upstream_charges_usage_and_releases_the_lock(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.hang(after_events=4))
    token = server.token()
    async with server.streaming(token=token) as (client, events):
        assert (await anext(events) or {})["type"] == "conversation"
        first = await anext(events)
        assert first is not None and first["type"] == "text"
        cancel = await client.post("/api/chatbot/cancel", headers=server.auth(token))
        assert cancel.json() == {"cancelled": True}
        rest = [e async for e in events if e is not None]
    assert rest[-1] == {"type": "done", "stop_reason": "cancelled", "iterations": 1}
    [usage] = [e for e in rest if e["type"] == "usage"]
    assert usage["input_tokens"] + usage["cache_creation_input_tokens"] > 0
    await fake_anthropic.wait_for_disconnects_async(1)

    async with server.client() as client:
        report = (await client.get("/api/chatbot/usage", headers=server.auth(token))).json()
        nothing = await client.post("/api/chatbot/cancel", headers=server.auth(token))
    charged = sum(usage[k] for k in usage if k != "type")
    assert report["tiers"]["user"]["used"] == charged
    assert nothing.json() == {"cancelled": False}
    assert (await server.message("again")).status == 200


async def test_a_client_that_goes_away_does_not_stop_its_request_which_ends_and_frees_the_lock(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    # Inverted on purpose (resumable streams): only Stop ends a request early, as in Lambda, where a
    # dropped connection does not stop the function.
    fake_anthropic.enqueue(Reply.text("one two three four five six", chunks=6).with_delay(0.05))
    async with server.streaming() as (_, events):
        assert (await anext(events) or {})["type"] == "conversation"
        first = await anext(events)
        assert first is not None and first["type"] == "text"
    # The client is gone; the model streams on to its end and the lock is released then.
    await fake_anthropic.wait_for_requests_async(1)
    statuses: list[int] = []
    for _ in range(200):
        fake_anthropic.enqueue(Reply.text("back"))
        stream = await server.message("again")
        statuses.append(stream.status)
        if stream.status == 200:
            break
        await asyncio.sleep(0.05)
    assert statuses[-1] == 200, statuses
    assert fake_anthropic.disconnects == [], "the first answer was read to its end, not cut off"


async def test_the_loop_stops_after_ten_model_calls(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.set_responder(lambda request: Reply.tool_use("organization_get", {}))
    stream = await server.message("loop forever")
    assert stream.last == {"type": "done", "stop_reason": "max_iterations", "iterations": 10}
    assert len(fake_anthropic.message_requests) == 10
    assert len(stream.of("usage")) == 10 and len(stream.of("tool_result")) == 10


async def test_spent_user_quota_gets_429_with_tier_limit_used_and_retry_after(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    # The first answer is cut at the max_tokens the limit leaves it, which spends the day: whatever the
    # prompt's size, what is left then is less than the next prompt.
    server = start_server(chatbot_daily_token_limit_user=8000)
    fake_anthropic.enqueue(Reply.text("word " * 4000))
    first = await server.message("hi")
    assert first.status == 200 and first.last["stop_reason"] == "max_tokens"
    charged = sum(sum(v for k, v in e.items() if k != "type") for e in first.of("usage"))
    stream = await server.message("hi")
    assert stream.status == 429 and stream.error_body is not None
    body = stream.error_body
    assert body["error"] == "limit_exceeded" and body["tier"] == "user" and body["limit"] == 8000
    assert body["used"] == charged and body["resets_at"].endswith("T00:00:00Z")
    assert 0 < int(stream.headers["retry-after"]) <= 86400
    assert len(fake_anthropic.message_requests) == 1
    # Nothing was left behind: the lock is free (another refusal, not a 409).
    assert (await server.message("hi")).status == 429


async def test_usage_reports_what_the_stream_charged(server: LiveServer) -> None:
    stream = await server.message("hi")
    charged = sum(sum(v for k, v in e.items() if k != "type") for e in stream.of("usage"))
    async with server.client() as client:
        response = await client.get("/api/chatbot/usage", headers=server.auth())
    report = response.json()
    assert set(report) == {"date", "resets_at", "tiers", "role", "permissions"}
    assert report["role"] == "admin" and "audit:read" in report["permissions"]
    assert report["tiers"]["user"] == {"used": charged, "limit": 50000}
    assert report["tiers"]["organization"]["used"] == charged
    assert report["tiers"]["global"]["limit"] == 1_000_000


async def test_disabled_mode_reports_off_and_refuses_messages_with_503(start_server: ServerFactory) -> None:
    server = start_server(anthropic_api_key=None)
    async with server.client() as client:
        status = (await client.get("/api/chatbot/status")).json()
    assert status == {"enabled": False, "model": "claude-haiku-4-5", "max_iterations": 10}
    stream = await server.message("hi")
    assert stream.status == 503 and stream.error_body is not None
    assert stream.error_body["error"] == "chatbot_disabled"
    assert (
        "ANTHROPIC_API_KEY" not in stream.error_body["message"] or "API key" in stream.error_body["message"]
    )


async def test_status_and_healthz_need_no_token(server: LiveServer) -> None:
    async with server.client() as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/api/chatbot/status")).json()["enabled"] is True


async def test_keep_alive_comments_flow_while_the_model_is_slow(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(chatbot_keepalive_seconds=0.05)
    fake_anthropic.enqueue(Reply.text("slow", chunks=1).with_delay(0.0, latency=0.5))
    stream = await server.message("hi")
    assert stream.keepalives >= 2 and stream.text == "slow" and stream.last["type"] == "done"


async def test_request_deadline_ends_with_timeout_and_releases_the_lock(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(chatbot_request_timeout_seconds=1)
    fake_anthropic.enqueue(Reply.hang(after_events=4))
    stream = await server.message("hi")
    assert stream.last["type"] == "error" and stream.last["code"] == "timeout"
    assert stream.of("usage"), "the cut-short call is still charged and reported"
    await fake_anthropic.wait_for_disconnects_async(1)
    assert (await server.message("again")).status == 200


async def test_recorded_text_stream_replays_through_the_loop(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    path = FIXTURES / "text-end-turn.jsonl"
    expected = "".join(
        e["delta"]["text"]
        for e in map(json.loads, path.read_text().splitlines())
        if e["type"] == "content_block_delta"
    )
    fake_anthropic.enqueue(Reply.replay(path))
    stream = await server.message("hi")
    assert stream.text == expected and stream.last["stop_reason"] == "end_turn"
    [usage] = stream.of("usage")
    assert usage["output_tokens"] > 0


async def test_recorded_tool_calls_of_unknown_tools_become_error_results_and_the_loop_goes_on(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.replay(FIXTURES / "haiku-4-5-tool-use.jsonl"),
        Reply.replay(FIXTURES / "text-then-tool-no-args.jsonl"),
        Reply.text("All done."),
    )
    stream = await server.message("hi")
    first, second = stream.of("tool_use")
    assert first["name"] == "json" and first["input"]["elements"][0]["location"] == "San Francisco"
    assert second["name"] == "updateIssueList" and second["input"] == {}
    assert all(r["is_error"] for r in stream.of("tool_result"))
    assert stream.text.startswith("I'll update the issue list for you.") and stream.text.endswith("All done.")
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 3}


async def test_history_is_sent_to_the_model_before_the_new_message(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    history = [{"role": "user", "content": "my name is Al"}, {"role": "assistant", "content": "Hi Al"}]
    await server.message("what is my name?", history=history)
    messages = fake_anthropic.message_requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"][0]["text"] == "my name is Al"
    assert messages[-1]["content"][0]["text"] == "what is my name?"


async def test_upstream_overloaded_before_the_stream_becomes_an_error_event(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.set_responder(lambda request: Reply.overloaded(retry_after=0.01))
    stream = await server.message("hi")
    assert stream.status == 200
    assert stream.last["type"] == "error" and stream.last["code"] == "upstream_overloaded"
    assert len(fake_anthropic.message_requests) >= 2, "the SDK retried before giving up"
    assert (await server.message("again")).status == 200


async def test_wait_until_is_bounded() -> None:
    try:
        await wait_until(lambda: False, within=0.05)
    except AssertionError:
        return
    raise AssertionError("wait_until did not give up")


async def test_a_cancel_before_the_model_answers_still_charges_the_estimated_input(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    # Found in review: cancelling a long prompt before `message_start` was charged 0 tokens and freed the
    # lock at once, so a prompt could be processed again and again at no cost to the quota.
    fake_anthropic.enqueue(Reply.text("never seen").with_delay(0.0, latency=5.0))
    prompt = "spend my quota " * 500
    token = server.token()
    async with server.streaming(prompt, token=token) as (client, events):
        assert (await anext(events) or {})["type"] == "conversation"
        await fake_anthropic.wait_for_requests_async(1)
        cancel = await client.post("/api/chatbot/cancel", headers=server.auth(token))
        assert cancel.json() == {"cancelled": True}
        rest = [e async for e in events if e is not None]
    assert rest[-1] == {"type": "done", "stop_reason": "cancelled", "iterations": 1}
    [usage] = [e for e in rest if e["type"] == "usage"]
    assert usage["input_tokens"] >= len(prompt.encode())
    async with server.client() as client:
        report = (await client.get("/api/chatbot/usage", headers=server.auth(token))).json()
    assert report["tiers"]["user"]["used"] == sum(usage[k] for k in usage if k != "type")


async def test_lone_surrogates_from_the_model_end_the_stream_cleanly_and_charge_what_was_reported(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    # Found in review: a tool input holding "\ud800" crashed the SSE encoder and the token estimate; the
    # client got a broken stream with no final event and the call's reservation was never settled.
    fake_anthropic.enqueue(
        Reply.message("Looking up \ud800 now.", ToolCall("member_get", raw_json='{"user_id": "\\ud800"}')),
        Reply.text("No such member \udfff."),
    )
    token = server.token()
    stream = await server.message("find \U0001f600", token=token)
    assert stream.status == 200
    assert stream.last["type"] == "done", stream.events
    assert "\ufffd" in stream.text and "No such member" in stream.text
    [call] = stream.of("tool_use")
    assert call["input"] == {"user_id": "\ufffd"}
    charged = sum(e[k] for e in stream.of("usage") for k in e if k != "type")
    async with server.client() as client:
        report = (await client.get("/api/chatbot/usage", headers=server.auth(token))).json()
    assert report["tiers"]["user"]["used"] == charged

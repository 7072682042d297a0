"""The fake Anthropic API, exercised through the real SDK (and raw HTTP where the wire format matters)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from tests.fakes.anthropic_api import (
    DEFAULT_TEXT,
    RECORDED_STREAMS,
    FakeAnthropic,
    Reply,
    ToolCall,
    count_request_tokens,
    demo_responder,
    estimate_tokens,
    last_user_text,
)

FIXTURES = RECORDED_STREAMS
MODEL = "claude-haiku-4-5"
USER_HI: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    server.clear()
    yield server
    server.clear()


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with fake.async_client(max_retries=0) as sdk:
        yield sdk


async def raw_events(
    fake: FakeAnthropic, body: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[str, str]]]:
    """POST a streaming request with plain httpx; return the response and its (event, data) pairs."""
    async with (
        httpx.AsyncClient(base_url=fake.base_url) as http,
        http.stream(
            "POST", "/v1/messages", json={"stream": True, **body}, headers={"x-api-key": "k"}
        ) as resp,
    ):
        text = (await resp.aread()).decode()
    frames = [f for f in text.split("\n\n") if f]
    pairs = []
    for frame in frames:
        event_line, data_line = frame.split("\n")
        assert event_line.startswith("event: ") and data_line.startswith("data: "), frame
        pairs.append((event_line.removeprefix("event: "), data_line.removeprefix("data: ")))
    return resp, pairs


def request(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 1024, "messages": USER_HI, **extra}


async def test_streamed_text_reaches_the_sdk_in_the_requested_number_of_deltas(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.text("Hello **world**", chunks=5))
    async with client.messages.stream(**request()) as stream:
        pieces = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert pieces == ["Hel", "lo ", "**w", "orl", "d**"]
    assert final.content[0].type == "text" and final.content[0].text == "Hello **world**"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == estimate_tokens("Hello **world**")
    assert fake.message_requests[0].usage == {
        "input_tokens": final.usage.input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": final.usage.output_tokens,
    }


async def test_wire_format_is_event_then_data_with_pings_like_the_recordings(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.tool_use("member_list", {"role": "admin"}, text_before="Let me check."))
    resp, pairs = await raw_events(fake, request())
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["request-id"].startswith("req_")
    names = [name for name, _ in pairs]
    assert all(json.loads(data)["type"] == name for name, data in pairs)
    assert names[0] == "message_start" and names[-2:] == ["message_delta", "message_stop"]
    assert names.count("ping") == 2
    start = json.loads(pairs[0][1])["message"]
    assert start["usage"]["input_tokens"] > 0 and start["content"] == [] and start["stop_reason"] is None
    deltas = [json.loads(d)["delta"] for n, d in pairs if n == "content_block_delta"]
    json_pieces = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert json_pieces[0] == "" and len([p for p in json_pieces if p]) >= 2
    assert json.loads("".join(json_pieces)) == {"role": "admin"}
    final_delta = json.loads(pairs[-2][1])
    assert final_delta["delta"]["stop_reason"] == "tool_use"
    assert final_delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


async def test_tool_input_sent_in_pieces_is_parsed_by_the_sdk(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(
        Reply.tool_uses(
            ToolCall("member_list", {"role": "admin"}, id="toolu_1"),
            ("organization_get", {}),
            text_before="Let me check.",
        )
    )
    async with client.messages.stream(**request()) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    first, second = final.content[1], final.content[2]
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.name, first.input) == ("toolu_1", "member_list", {"role": "admin"})
    assert (second.name, second.input) == ("organization_get", {})
    assert second.id.startswith("toolu_") and second.id != first.id


RECORDINGS = {
    "text-end-turn.jsonl": (
        [
            (
                "text",
                "Hello! I'm doing well, thank you for asking. How are you doing today? "
                "Is there anything I can help you with?",
            )
        ],
        "end_turn",
        12,
        30,
    ),
    "haiku-4-5-tool-use.jsonl": (
        [
            (
                "tool_use",
                "json",
                {"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]},
            )
        ],
        "tool_use",
        849,
        47,
    ),
    "text-then-tool-no-args.jsonl": (
        [("text", "I'll update the issue list for you."), ("tool_use", "updateIssueList", {})],
        "tool_use",
        565,
        48,
    ),
}


def summary(message: anthropic.types.Message) -> list[tuple[Any, ...]]:
    return [
        ("text", b.text) if b.type == "text" else ("tool_use", b.name, b.input)
        for b in message.content
        if b.type in ("text", "tool_use")
    ]


@pytest.mark.parametrize("name", sorted(RECORDINGS))
async def test_recorded_stream_replays_verbatim_and_the_sdk_rebuilds_its_message(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, name: str
) -> None:
    content, stop_reason, input_tokens, output_tokens = RECORDINGS[name]
    lines = (FIXTURES / name).read_text().splitlines()
    fake.enqueue(Reply.replay(FIXTURES / name))
    _, pairs = await raw_events(fake, request())
    assert [data for _, data in pairs] == lines

    fake.enqueue(Reply.replay(FIXTURES / name))
    async with client.messages.stream(**request()) as stream:
        final = await stream.get_final_message()
    assert summary(final) == content
    assert final.stop_reason == stop_reason
    assert (final.usage.input_tokens, final.usage.output_tokens) == (input_tokens, output_tokens)


async def test_non_streaming_request_gets_the_same_message_as_json(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.replay(FIXTURES / "text-then-tool-no-args.jsonl"))
    message = await client.messages.create(**request())
    assert summary(message) == RECORDINGS["text-then-tool-no-args.jsonl"][0]
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize(
    ("reply", "error_class", "status", "error_type"),
    [
        (Reply.rate_limited(retry_after=2), anthropic.RateLimitError, 429, "rate_limit_error"),
        (Reply.server_error(), anthropic.InternalServerError, 500, "api_error"),
        (Reply.overloaded(), anthropic.OverloadedError, 529, "overloaded_error"),
    ],
)
async def test_http_errors_surface_as_the_sdk_error_classes(
    fake: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    reply: Reply,
    error_class: type[anthropic.APIStatusError],
    status: int,
    error_type: str,
) -> None:
    fake.enqueue(reply)
    with pytest.raises(error_class) as caught:
        async with client.messages.stream(**request()) as stream:
            await stream.get_final_message()
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == error_type
    assert caught.value.response.headers["request-id"].startswith("req_")
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "2"
    assert len(fake.message_requests) == 1


async def test_sdk_retries_a_429_then_succeeds_and_each_attempt_is_recorded(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.rate_limited(retry_after=0.01), Reply.overloaded(retry_after=0.01), Reply.text("ok"))
    async with fake.async_client(max_retries=2) as client, client.messages.stream(**request()) as stream:
        final = await stream.get_final_message()
    assert summary(final) == [("text", "ok")]
    attempts = fake.message_requests
    assert [r.status for r in attempts] == [429, 529, 200]
    assert [r.headers["x-stainless-retry-count"] for r in attempts] == ["0", "1", "2"]


async def test_error_event_mid_stream_raises_after_the_text_already_sent(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.stream_error(after_events=5, reply=Reply.text("aaaa bbbb cccc", chunks=3)))
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(**request()) as stream:
            async for text in stream.text_stream:
                received.append(text)
    # message_start, content_block_start, ping, then two deltas.
    assert received == ["aaaa ", "bbbb "]
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}


async def test_reset_mid_stream_raises_a_transport_error(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.reset(after_events=4))
    with pytest.raises(httpx2.ReadError):
        async with client.messages.stream(**request()) as stream:
            await stream.get_final_message()
    record = fake.message_requests[0]
    record.wait_finished()
    assert record.events_sent == 4 and not record.completed
    assert fake.disconnects == []  # the server dropped it; the client did not leave


async def test_connection_closed_mid_body_raises_a_protocol_error(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.closed(after_events=3))
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        async with client.messages.stream(**request()) as stream:
            await stream.get_final_message()


async def test_client_closing_a_hanging_stream_is_recorded_as_a_disconnect(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(
        Reply.text("finished"), Reply.hang(after_events=4, reply=Reply.text("a b c d e f", chunks=3))
    )
    async with client.messages.stream(**request()) as stream:
        await stream.get_final_message()
    async with client.messages.stream(**request()) as stream:
        async for text in stream.text_stream:
            assert text == "a b "
            break
    [gone] = await fake.wait_for_disconnects_async(1)
    assert gone is fake.message_requests[1]
    assert gone.events_sent == 4 and not gone.completed
    assert fake.message_requests[0].completed and not fake.message_requests[0].disconnected


async def test_cancelling_a_slow_stream_stops_the_server_sending(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.text("word " * 40, chunks=40, delay=0.01))
    async with client.messages.stream(**request()) as stream:
        async for _ in stream.text_stream:
            break
    [gone] = await fake.wait_for_disconnects_async(1)
    gone.wait_finished()
    assert gone.events_sent < 10


async def test_truncated_stream_ends_without_message_stop(fake: FakeAnthropic) -> None:
    fake.enqueue(Reply.truncated())
    resp, pairs = await raw_events(fake, request())
    assert resp.status_code == 200
    assert [name for name, _ in pairs][-1] == "message_delta"


async def test_malformed_event_data_makes_the_sdk_raise(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.malformed(after_events=3))
    with pytest.raises(json.JSONDecodeError):
        async with client.messages.stream(**request()) as stream:
            await stream.get_final_message()


async def test_tool_input_that_is_not_json_makes_the_sdk_raise(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.tool_use_invalid_json("member_list"))
    with pytest.raises(ValueError, match="Unable to parse tool parameter JSON"):
        async with client.messages.stream(**request()) as stream:
            await stream.get_final_message()


async def test_concurrent_requests_each_get_their_own_responder_answer(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.set_responder(lambda req: Reply.text(f"echo {last_user_text(req)}", chunks=4, delay=0.005))

    async def ask(marker: str) -> str:
        messages: Any = [{"role": "user", "content": marker}]
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=messages) as stream:
            return "".join([t async for t in stream.text_stream])

    markers = [f"user-{i}" for i in range(20)]
    answers = await asyncio.gather(*(ask(m) for m in markers))
    assert answers == [f"echo {m}" for m in markers]
    assert len(fake.message_requests) == 20


async def test_nothing_queued_answers_the_documented_default_text(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.text("queued"))
    first = await client.messages.create(**request())
    second = await client.messages.create(**request())
    assert summary(first) == [("text", "queued")]
    assert summary(second) == [("text", DEFAULT_TEXT)]
    assert fake.pending == 0


async def test_cached_prefix_is_created_once_then_read(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    tools: Any = [
        {"name": "member_list", "description": "List members " * 20, "input_schema": {"type": "object"}},
        {
            "name": "organization_get",
            "description": "Get the organization",
            "input_schema": {"type": "object"},
            "cache_control": {"type": "ephemeral"},
        },
    ]
    system: Any = [{"type": "text", "text": "You help Alice. " * 30, "cache_control": {"type": "ephemeral"}}]
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "tools": tools, "system": system}
    first = await client.messages.create(**body, messages=[{"role": "user", "content": "first question"}])
    second_messages: Any = [{"role": "user", "content": "a different, longer second question"}]
    second = await client.messages.create(**body, messages=second_messages)

    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens > 0
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens > first.usage.input_tokens
    counted = await client.messages.count_tokens(
        model=MODEL, tools=tools, system=system, messages=second_messages
    )
    usage = second.usage
    total = (
        usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    )
    assert counted.input_tokens == total
    assert counted.input_tokens == count_request_tokens({**body, "messages": second_messages})


async def test_reply_longer_than_max_tokens_is_cut_with_stop_reason_max_tokens(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.enqueue(Reply.text("x" * 400))
    async with client.messages.stream(model=MODEL, max_tokens=10, messages=USER_HI) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 10
    assert summary(final) == [("text", "x" * 40)]


async def test_tool_result_without_its_tool_use_is_refused_like_the_real_api(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    messages: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "1"}]},
    ]
    fake.enqueue(Reply.text("never sent"))
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    assert fake.pending == 1


async def test_request_without_api_key_gets_401(fake: FakeAnthropic) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        resp = await http.post("/v1/messages", json=request())
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "authentication_error"


async def test_responder_that_raises_answers_500_and_is_reported(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    def broken(req: dict[str, Any]) -> Reply:
        raise KeyError("oops")

    fake.set_responder(broken)
    with pytest.raises(anthropic.InternalServerError, match="fake responder raised"):
        await client.messages.create(**request())
    assert [type(e) for e in fake.responder_errors] == [KeyError]


def test_stop_ends_a_hanging_stream_and_closes_the_listener() -> None:
    fake = FakeAnthropic().start()
    fake.enqueue(Reply.hang(after_events=1))
    port = fake.port
    with (
        httpx.Client(base_url=fake.base_url, timeout=5) as http,
        http.stream("POST", "/v1/messages", json=request(stream=True), headers={"x-api-key": "k"}) as resp,
    ):
        lines = resp.iter_lines()
        assert next(lines).startswith("event: message_start")
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 3
        with pytest.raises(httpx.RemoteProtocolError):
            list(lines)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_demo_responder_calls_the_tool_then_summarises_its_result_as_a_table() -> None:
    tools = [
        {
            "name": "member_list",
            "input_schema": {"type": "object", "properties": {"role": {"type": "string"}}},
        },
        {"name": "organization_get", "input_schema": {"type": "object"}},
    ]
    ask = {
        "model": MODEL,
        "tools": tools,
        "messages": [{"role": "user", "content": "Who are the admins here?"}],
    }
    first = demo_responder(ask)
    assert first.stop_reason == "tool_use"
    call = first.blocks[-1]
    assert isinstance(call, ToolCall) and (call.name, call.input) == ("member_list", {"role": "admin"})

    result = {"members": [{"name": "Alice Anders", "email": "alice@acme.test", "role": "admin"}]}
    follow_up = {
        **ask,
        "messages": [
            *ask["messages"],
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "member_list", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": json.dumps(result)}],
            },
        ],
    }
    [summary_block] = demo_responder(follow_up).blocks
    assert not isinstance(summary_block, ToolCall)
    assert "| name | email | role |" in summary_block.text
    assert "| Alice Anders | alice@acme.test | admin |" in summary_block.text

    invite = {**ask, "messages": [{"role": "user", "content": "invite gina@acme.test as a member"}]}
    refusal = demo_responder(invite)
    assert refusal.stop_reason == "end_turn" and "invitation_create" in refusal.blocks[0].text  # type: ignore[union-attr]


def test_cli_serves_the_demo_responder_over_http() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.anthropic_api", "--port", str(port), "--delay", "0"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.ConnectError:
                    pass
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the CLI server did not come up"
                time.sleep(0.05)
            tools = [{"name": "organization_get", "input_schema": {"type": "object"}}]
            messages = [{"role": "user", "content": "show my organization"}]
            resp = http.post(
                "/v1/messages",
                json={"model": MODEL, "max_tokens": 100, "tools": tools, "messages": messages},
                headers={"x-api-key": "k"},
            )
        assert resp.status_code == 200
        assert [b["type"] for b in resp.json()["content"]] == ["text", "tool_use"]
        assert resp.json()["content"][1]["name"] == "organization_get"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0

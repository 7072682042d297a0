"""Bad input and unavailable stores: each a clear, documented error, no 500, no lock left, nothing written."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply


async def post_raw(
    server: LiveServer, content: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with server.client() as client:
        return await client.post(
            "/api/chatbot/message",
            content=content,
            headers={
                "authorization": f"Bearer {server.token()}",
                "content-type": "application/json",
                **(headers or {}),
            },
        )


async def assert_nothing_left_behind(server: LiveServer, fake: FakeAnthropic) -> None:
    """No model call was made, no usage written, and the user's lock is free."""
    assert fake.message_requests == []
    async with server.client() as client:
        report = (await client.get("/api/chatbot/usage", headers=server.auth())).json()
    assert report["tiers"]["user"]["used"] == 0
    assert (await server.message("still fine?")).status == 200


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{oops", "not valid JSON"),
        (b'"just a string"', "JSON object"),
        (b'{"message": 5}', "message"),
        (b'{"message": ""}', "message"),
        (b'{"message": "hi", "history": [{"role": "assistant", "content": "x"}]}', "history"),
        (b'{"message": "' + b"x" * 8001 + b'"}', "message"),
    ],
)
async def test_malformed_bodies_get_400_naming_the_field_and_leave_nothing_behind(
    server: LiveServer, fake_anthropic: FakeAnthropic, content: bytes, field: str
) -> None:
    response = await post_raw(server, content)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request" and field in response.json()["message"]
    await assert_nothing_left_behind(server, fake_anthropic)


async def test_body_over_64_kib_gets_413(server: LiveServer, fake_anthropic: FakeAnthropic) -> None:
    response = await post_raw(server, b'{"message": "' + b"x" * (64 * 1024) + b'"}')
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    await assert_nothing_left_behind(server, fake_anthropic)


async def test_chunked_body_over_64_kib_without_length_gets_413(server: LiveServer) -> None:
    async def body():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b"x" * 4096

    async with server.client() as client:
        response = await client.post("/api/chatbot/message", content=body(), headers=server.auth())
    assert response.status_code == 413


async def test_a_message_too_big_for_a_tiers_whole_limit_gets_400_request_too_large_not_429(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    # Found in review: such a request got 429 limit_exceeded with used 0, telling the user they had spent
    # their day when they had not; no wait would ever let it through.
    server = start_server(chatbot_daily_token_limit_user=6000)
    response = await post_raw(server, b'{"message": "' + "\u00e9".encode() * 4000 + b'"}')
    body = response.json()
    assert response.status_code == 400 and body["error"] == "request_too_large", body
    assert body["tier"] == "user" and body["limit"] == 6000 and body["estimated"] > 6000
    assert "6,000" in body["message"]
    await assert_nothing_left_behind(server, fake_anthropic)


async def test_a_long_legacy_history_is_trimmed_to_fit_rather_than_refused(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    # Found in review: a 59 KB body (five long answers) got 429 with used 0 and every further message too.
    history = []
    for turn in range(5):
        history += [
            {"role": "user", "content": f"question {turn}"},
            {"role": "assistant", "content": f"answer {turn} " + "long text " * 1150},
        ]
    fake_anthropic.enqueue(Reply.text("still here"))
    stream = await server.message("and now?", history=history)
    assert stream.status == 200 and stream.last["type"] == "done"
    sent = fake_anthropic.message_requests[0].body["messages"]
    assert sent[-1]["content"][0]["text"] == "and now?" and len(sent) < len(history) + 1


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer " + "e" * 10000],
)
async def test_missing_or_malformed_tokens_get_401_on_every_authenticated_endpoint(
    server: LiveServer, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    async with server.client() as client:
        for method, path in (
            ("POST", "/api/chatbot/message"),
            ("POST", "/api/chatbot/cancel"),
            ("GET", "/api/chatbot/usage"),
        ):
            response = await client.request(method, path, json={"message": "hi"}, headers=headers)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"] == "unauthorized"


async def test_expired_token_gets_401(server: LiveServer) -> None:
    stream = await server.message("hi", token=server.token(exp=1))
    assert (
        stream.status == 401 and stream.error_body is not None and "expired" in stream.error_body["message"]
    )


async def test_unknown_paths_and_methods_get_json_errors(server: LiveServer) -> None:
    async with server.client() as client:
        missing = await client.get("/api/chatbot/nope")
        wrong = await client.get("/api/chatbot/message")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


# --- with Redis -------------------------------------------------------------------------------------


async def test_two_instances_sharing_redis_admit_one_request_per_user_and_cancel_across(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, redis_url: str
) -> None:
    first = start_server(redis_url=redis_url)
    # A second instance over the same tables and Redis, as another Lambda sandbox would be.
    second = start_server(
        redis_url=redis_url,
        app_table=first.settings.app_table,
        chatbot_usage_table=first.settings.chatbot_usage_table,
    )
    await first.warm()
    await second.warm()
    user = "user_alice"
    fake_anthropic.enqueue(Reply.hang(after_events=4))
    token = first.token(user)
    async with first.streaming(token=token) as (_, events):
        assert (await anext(events)) is not None
        refused = await second.message("me too", user=user)
        assert refused.status == 409
        async with second.client() as other:
            cancelled = await other.post("/api/chatbot/cancel", headers=first.auth(token))
        assert cancelled.json() == {"cancelled": True}
        rest = [e async for e in events if e is not None]
    assert rest[-1]["stop_reason"] == "cancelled"
    assert (await second.message("now", user=user)).status == 200


async def test_redis_configured_but_unreachable_gets_503_unavailable(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(redis_url="redis://127.0.0.1:1/0")
    stream = await server.message("hi")
    assert stream.status == 503 and stream.error_body is not None
    assert stream.error_body["error"] == "unavailable"
    assert fake_anthropic.message_requests == []


async def test_dynamodb_unreachable_gets_503_unavailable(start_server: ServerFactory) -> None:
    server = start_server()
    # Point the running app's data access at a closed port, as if DynamoDB went away.
    import boto3
    from botocore.config import Config

    dead = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:1",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
    )
    server.services.appdata._client = dead
    stream = await server.message(f"hi {uuid.uuid4()}")
    assert stream.status == 503 and stream.error_body is not None
    assert stream.error_body["error"] == "unavailable"


async def test_concurrent_requests_of_many_users_are_all_admitted(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    users = [
        ("user_alice", "org_acme"),
        ("user_bob", "org_acme"),
        ("user_carol", "org_globex"),
        ("user_dave", "org_globex"),
    ]
    streams = await asyncio.gather(*(server.message("hi", user=u, org=o) for u, o in users))
    assert [s.status for s in streams] == [200] * 4
    assert all(s.last["type"] == "done" for s in streams)

"""CORS answers only the configured origins; the Anthropic API key and bearer tokens never reach the logs."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reliability.support import captured_logs

ALLOWED = "https://app.example.test"
PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type",
}


async def test_cors_allows_only_the_configured_origins(start_server: ServerFactory) -> None:
    server = start_server(cors_allow_origins=f"{ALLOWED},https://admin.example.test")
    async with server.client() as client:
        allowed = await client.options("/api/chatbot/message", headers={"origin": ALLOWED, **PREFLIGHT})
        evil = await client.options(
            "/api/chatbot/message", headers={"origin": "https://evil.test", **PREFLIGHT}
        )
        simple_evil = await client.get("/api/chatbot/status", headers={"origin": "https://evil.test"})
        simple_ok = await client.get("/api/chatbot/status", headers={"origin": ALLOWED})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    assert "access-control-allow-origin" not in simple_evil.headers
    assert simple_ok.headers["access-control-allow-origin"] == ALLOWED


async def test_without_configured_origins_no_cross_origin_access_is_granted(
    start_server: ServerFactory,
) -> None:
    server = start_server()
    async with server.client() as client:
        preflight = await client.options("/api/chatbot/message", headers={"origin": ALLOWED, **PREFLIGHT})
        simple = await client.get("/api/chatbot/status", headers={"origin": ALLOWED})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_the_api_key_and_tokens_never_appear_in_logs(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, capfd: pytest.CaptureFixture[str]
) -> None:
    api_key = "sk-ant-api03-SECRET-KEY-THAT-MUST-NOT-LEAK-0123456789"
    with captured_logs() as logs:
        server = start_server(anthropic_api_key=api_key)
        token = server.token("user_alice")
        expired = server.token("user_alice", exp=1)
        forged = token[:-6] + "AAAAAA"
        fake_anthropic.enqueue(
            Reply.tool_use("member_list", {}),
            Reply.text("Here."),
            Reply.stream_error(after_events=4),
            *[Reply.server_error(retry_after=0.01)] * 3,
        )
        await server.message("list members", token=token)  # tools, usage, done
        await server.message("again", token=token)  # an upstream error mid-stream
        await server.message("and again", token=token)  # an upstream HTTP error
        for bad in (expired, forged, "garbage"):
            assert (await server.message("x", token=bad)).status == 401
        async with server.client() as client:
            await client.get("/api/chatbot/usage", headers={"authorization": f"Bearer {token}"})
            await client.post("/api/chatbot/cancel", headers={"authorization": f"Bearer {token}"})
        server.stop()
    out, err = capfd.readouterr()
    everything = "\n".join((logs.text(), out, err))
    assert "request refused" in everything and "chat request finished" in everything  # the logs were seen
    for secret in (api_key, token, expired, forged):
        assert secret not in everything
        assert secret.split(".")[-1] not in everything  # not even a token's signature

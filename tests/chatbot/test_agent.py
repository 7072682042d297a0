"""The agent loop's pure parts: the prompt, cache breakpoints, and how upstream failures are named."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import anthropic
import httpx2
import pytest
from chatbot.agent import _with_cache_breakpoint, system_prompt, upstream_error
from chatbot.errors import UpstreamError, UpstreamOverloaded
from chatbot.permissions import Caller

REQUEST = httpx2.Request("POST", "http://fake/v1/messages")


def status_error(status: int, kind: str) -> anthropic.APIStatusError:
    body = {"type": "error", "error": {"type": kind, "message": "boom"}}
    response = httpx2.Response(status, request=REQUEST, content=json.dumps(body).encode())
    return anthropic.APIStatusError("boom", response=response, body=body)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (status_error(529, "overloaded_error"), UpstreamOverloaded),
        (status_error(429, "rate_limit_error"), UpstreamOverloaded),
        # A mid-stream `event: error` arrives on a 200 response: only the body says what it is.
        (status_error(200, "overloaded_error"), UpstreamOverloaded),
        (status_error(500, "api_error"), UpstreamError),
        (status_error(400, "invalid_request_error"), UpstreamError),
        (anthropic.APIConnectionError(request=REQUEST), UpstreamError),
        (httpx2.ReadError("reset"), UpstreamError),
        (ValueError("Unable to parse tool parameter JSON"), UpstreamError),
    ],
)
def test_upstream_failures_map_to_the_stream_error_codes(error: Exception, expected: type) -> None:
    assert type(upstream_error(error)) is expected


def test_system_prompt_names_user_role_organization_and_date() -> None:
    caller = Caller("user_bob", "org_acme", "member", "Bob Brown", "bob@acme.test", "Acme Inc")
    prompt = system_prompt(caller, datetime(2026, 11, 26, 23, 59, tzinfo=UTC))
    for fact in ("Bob Brown", "bob@acme.test", "member", "Acme Inc", "org_acme", "2026-11-26"):
        assert fact in prompt


def test_cache_breakpoint_goes_on_the_last_block_without_touching_the_conversation() -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    marked = _with_cache_breakpoint(messages)
    assert marked[-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in messages[-1]["content"][-1], "the kept conversation is not modified"
    assert (
        sum("cache_control" in b for m in marked if isinstance(m["content"], list) for b in m["content"]) == 1
    )
    assert _with_cache_breakpoint([{"role": "user", "content": "hi"}])[0]["content"] == [
        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
    ]

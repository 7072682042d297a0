"""Faults of the model service, through the real HTTP API: every one ends the stream with one clear
`error` event, every token the model reported is charged (and shown in a `usage` event), and the user's
lock is free for their next message."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reliability.support import counted

FAST = 0.01  # retry-after the fake sends, so the SDK's own retries are quick
CASES = {
    "429 rate limited before the stream": ([Reply.rate_limited(retry_after=FAST)] * 3, "upstream_overloaded"),
    "529 overloaded before the stream": ([Reply.overloaded(retry_after=FAST)] * 3, "upstream_overloaded"),
    "500 before the stream": ([Reply.server_error(retry_after=FAST)] * 3, "upstream_error"),
    "error event mid-stream": ([Reply.stream_error(after_events=5)], "upstream_overloaded"),
    "connection reset mid-stream": ([Reply.reset(after_events=5)], "upstream_error"),
    "connection closed mid-stream": ([Reply.closed(after_events=5)], "upstream_error"),
    "malformed event": ([Reply.malformed(after_events=5)], "upstream_error"),
    "stream ending cleanly mid-answer": ([Reply.truncated(after_events=5)], "upstream_error"),
    "invalid tool-input JSON": ([Reply.tool_use_invalid_json(text_before="Let me look.")], "upstream_error"),
    "hang past the request deadline": ([Reply.hang(after_events=5)], "timeout"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_upstream_fault_ends_in_one_clear_error_charges_what_was_used_and_frees_the_lock(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, case: str
) -> None:
    replies, code = CASES[case]
    server = start_server(chatbot_request_timeout_seconds=1.5)
    fake_anthropic.enqueue(*replies)

    stream = await server.message("who are the admins?", user="user_bob")

    assert stream.status == 200
    assert stream.last["type"] == "error" and stream.last["code"] == code, stream.events
    assert stream.last["message"]
    reported = sum(counted(e) for e in stream.of("usage"))
    # What the model service said it used (message_start's counts, at least) is in the usage events.
    upstream = [r.usage for r in fake_anthropic.message_requests if r.usage]
    assert reported >= sum(u["input_tokens"] + u["output_tokens"] for u in upstream)
    async with server.client() as client:
        headers = {"authorization": f"Bearer {server.token('user_bob')}"}
        used = (await client.get("/api/chatbot/usage", headers=headers)).json()["tiers"]
    # Charged exactly what the client was told: no reservation left behind, nothing uncharged.
    assert used["user"]["used"] == used["organization"]["used"] == reported
    # The lock is free: the next message is admitted and answered.
    after = await server.message("and now?", user="user_bob")
    assert after.status == 200 and after.last["type"] == "done"

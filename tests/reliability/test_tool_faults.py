"""Tool faults inside a live request: a crash, a timeout, a huge result, invalid arguments, an unknown
tool — each comes back to the model as an `is_error` result and the loop goes on to its answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall, tool_results


async def crash(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("database exploded")


async def stall(*args: Any, **kwargs: Any) -> Any:
    await asyncio.sleep(30)


@pytest.mark.parametrize("fault", ["crash", "timeout", "huge"])
async def test_a_failing_tool_is_an_error_result_and_the_answer_still_comes(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    server = start_server(chatbot_tool_timeout_seconds=0.5, chatbot_tool_result_max_chars=2000)
    appdata = server.services.appdata
    if fault == "crash":
        monkeypatch.setattr(appdata, "list_members", crash)
    elif fault == "timeout":
        monkeypatch.setattr(appdata, "list_members", stall)
    else:
        real = appdata.list_members

        async def huge(*args: Any, **kwargs: Any) -> Any:
            return (await real(*args, **kwargs)) * 500

        monkeypatch.setattr(appdata, "list_members", huge)
    fake_anthropic.enqueue(Reply.tool_use("member_list", {}), Reply.text("Sorry, that did not work."))

    stream = await server.message("who is here?")

    [result] = stream.of("tool_result")
    assert result["is_error"] is True
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 2}
    [sent] = tool_results(fake_anthropic.message_requests[1].body or {})
    assert sent["is_error"] is True and len(str(sent["content"])) <= 2000
    assert "database exploded" not in str(sent["content"])


async def test_invalid_arguments_and_unknown_tools_are_error_results_and_the_loop_goes_on(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    # No approvals: the invitation to a malformed address must reach the tool, which refuses it.
    server = start_server(chatbot_approval="none")
    calls = [
        ToolCall("member_update_role", {"user_id": "user_bob", "role": "emperor"}),
        ToolCall("member_get", {"user_id": 42}),
        ToolCall("member_list", {"org_id": "org_globex"}),
        ToolCall("invitation_create", {"email": "not an address", "role": "member"}),
        ToolCall("drop_database", {}),
    ]
    fake_anthropic.enqueue(Reply.tool_uses(*calls), Reply.text("None of that worked."))

    stream = await server.message("do odd things")

    results = stream.of("tool_result")
    assert len(results) == len(calls) and all(r["is_error"] for r in results), results
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 2}

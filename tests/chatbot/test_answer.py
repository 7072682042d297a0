"""The answer accumulator over recorded real streams: blocks, tool calls, stop reason and usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from anthropic.types import RawMessageStreamEvent
from chatbot.answer import Answer, ToolCall, accumulate
from chatbot.usage import Usage
from pydantic import TypeAdapter

STREAMS = Path(__file__).resolve().parents[1] / "fixtures" / "anthropic-streams"
EVENT = TypeAdapter(RawMessageStreamEvent)


def replay(name: str, upto: int | None = None) -> Answer:
    answer: Answer | None = None
    lines = (STREAMS / name).read_text().splitlines()
    for line in lines[:upto]:
        data = json.loads(line)
        if data["type"] != "ping":  # the SDK's stream does not hand pings on
            answer = accumulate(EVENT.validate_python(data), answer)
    assert answer is not None
    return answer


def test_a_text_answer_is_joined_from_its_deltas_with_its_final_usage() -> None:
    answer = replay("text-end-turn.jsonl")
    [block] = answer.content()
    assert block["type"] == "text" and len(block["text"]) > 20
    assert answer.stop_reason == "end_turn" and answer.complete
    assert answer.usage == Usage(input_tokens=12, output_tokens=30)
    assert answer.tool_calls() == []
    assert answer.streamed_bytes == len(block["text"].encode())


def test_tool_calls_are_read_from_the_blocks_without_asking_for_the_content_first() -> None:
    answer = replay("haiku-4-5-tool-use.jsonl")
    [call] = answer.tool_calls()
    assert call == ToolCall(
        "toolu_01KFbKqPYSuAKujiL6mTfzYA",
        "json",
        {"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]},
    )
    assert answer.stop_reason == "tool_use"
    assert answer.usage.output_tokens == 47


def test_a_tool_call_without_arguments_has_an_empty_input_after_the_text() -> None:
    answer = replay("text-then-tool-no-args.jsonl")
    text, tool = answer.content()
    assert text["type"] == "text" and tool["type"] == "tool_use" and tool["input"] == {}
    assert [c.input for c in answer.tool_calls()] == [{}]


def test_an_answer_cut_off_before_message_delta_is_not_complete_and_keeps_the_start_usage() -> None:
    answer = replay("text-end-turn.jsonl", upto=5)
    assert not answer.complete and answer.stop_reason is None
    assert answer.usage == Usage(input_tokens=12, output_tokens=1)


def test_each_message_start_begins_a_new_answer() -> None:
    first = replay("text-end-turn.jsonl")
    start = EVENT.validate_python(
        json.loads((STREAMS / "haiku-4-5-tool-use.jsonl").read_text().splitlines()[0])
    )
    fresh = accumulate(start, first)
    assert fresh is not first and fresh.blocks == {} and fresh.usage.input_tokens == 849


@pytest.mark.parametrize("raw", ['"just a string"', "[1, 2]", "{not json"])
def test_a_tool_input_that_is_not_a_json_object_is_refused_as_the_sdk_refuses_it(raw: str) -> None:
    answer = replay("haiku-4-5-tool-use.jsonl")
    answer.blocks[0].partial_json = raw
    with pytest.raises(ValueError):
        answer.tool_calls()
    with pytest.raises(ValueError):
        answer.content()


def _event(data: dict[str, Any]) -> Any:
    return EVENT.validate_python(data)


def test_deltas_of_a_block_whose_start_was_not_seen_still_count_their_bytes() -> None:
    answer = accumulate(
        _event({"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "héllo"}}),
        None,
    )
    assert answer.content() == [{"type": "text", "text": "héllo"}]
    assert answer.streamed_bytes == 6

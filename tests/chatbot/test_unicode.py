"""Lone surrogates: text from outside is made well-formed, and nothing that encodes text fails on one."""

from __future__ import annotations

import json

import pytest
from chatbot.answer import Block
from chatbot.events import encode, event
from chatbot.tools import ToolResult
from chatbot.unicode import well_formed, well_formed_json
from chatbot.usage import estimate_input_tokens


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\ud800b", "a\ufffdb"),
        ("end \udfff", "end \ufffd"),
        ("\ud83d\ude00", "\U0001f600"),  # a pair split over two code points is joined, not replaced
        ("\U0001f600 ok", "\U0001f600 ok"),
    ],
)
def test_lone_surrogates_become_the_replacement_character(text: str, expected: str) -> None:
    assert well_formed(text) == expected
    well_formed(text).encode()


def test_every_string_of_a_json_value_is_made_well_formed_keys_included() -> None:
    value = {"a\ud800": ["\udc00", 1, None, {"k": "v\ud800"}]}
    assert well_formed_json(value) == {"a\ufffd": ["\ufffd", 1, None, {"k": "v\ufffd"}]}


def test_the_sse_encoder_never_fails_on_a_lone_surrogate() -> None:
    frame = encode(event("text", text="bad \ud800 text \U0001f600"), 7)
    data = frame.decode().split("data: ", 1)[1].strip()
    assert frame.startswith(b"id: 7\nevent: text\n")
    assert json.loads(data) == {"type": "text", "text": "bad \ud800 text \U0001f600"}


def test_the_token_estimate_counts_a_lone_surrogate_instead_of_failing() -> None:
    plain = estimate_input_tokens({"messages": [{"role": "user", "content": "xxx"}]})
    assert estimate_input_tokens({"messages": [{"role": "user", "content": "\ud800"}]}) >= plain


def test_a_tool_input_with_an_escaped_lone_surrogate_parses_well_formed() -> None:
    block = Block("tool_use", name="member_get", partial_json='{"user_id": "\\ud800"}')
    assert block.tool_input() == {"user_id": "\ufffd"}


def test_a_tool_result_from_outside_is_kept_encodable() -> None:
    assert ToolResult(False, "name: \udfff").content == "name: \ufffd"

"""The message body schema: every malformed body is a 400 naming the field."""

from __future__ import annotations

import json

import pytest
from chatbot.errors import InvalidRequest
from chatbot.request import parse_message


def body(**data: object) -> bytes:
    return json.dumps(data).encode()


def test_a_message_with_alternating_history_seeds_the_conversation_with_it() -> None:
    request = parse_message(
        body(
            message="and now?",
            history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
    )
    assert request.seed() == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert request.message == "and now?" and request.conversation_id is None


def test_approvals_decide_the_calls_of_a_conversation() -> None:
    request = parse_message(body(conversation_id="conv_1", approvals={"toolu_1": True, "toolu_2": False}))
    assert request.approvals == {"toolu_1": True, "toolu_2": False} and request.message is None


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (body(), "message"),
        (body(message=""), "message"),
        (body(message="   "), "blank"),
        (body(message=42), "message"),
        (body(message="x" * 8001), "message"),
        (body(message="hi", history="nope"), "history"),
        (body(message="hi", history=[{"role": "system", "content": "x"}]), "history.0.role"),
        (body(message="hi", history=[{"role": "assistant", "content": "x"}]), "history[0]"),
        (body(message="hi", history=[{"role": "user", "content": "x"}]), "end with an assistant"),
        (body(message="hi", history=[{"role": "user", "content": 5}]), "history.0.content"),
        (body(message="hi", history=[{"role": "user", "content": "a", "extra": 1}]), "extra"),
        (
            body(
                message="hi",
                history=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}] * 21,
            ),
            "history",
        ),
        (body(message="hi", org_id="org_globex"), "org_id"),
        (body(conversation_id="c1"), "either message or approvals"),
        (body(message="hi", conversation_id="c1", approvals={"t": True}), "either message or approvals"),
        (body(approvals={"t": True}), "conversation_id"),
        (body(conversation_id="c1", approvals={}), "approvals"),
        (body(conversation_id="c1", approvals={"t": "yes"}), "approvals.t"),
        (body(conversation_id="c1", approvals={"": True}), "tool call id"),
        (body(message="hi", conversation_id=""), "conversation_id"),
        (body(message="hi", conversation_id=7), "conversation_id"),
        (
            body(
                message="hi",
                conversation_id="c1",
                history=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}],
            ),
            "history only seeds",
        ),
    ],
)
def test_malformed_bodies_are_invalid_requests_naming_the_problem(raw: bytes, names: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_message(raw)
    assert names in caught.value.message

"""Conversations when DynamoDB fails: a conversation that cannot be loaded is a 503 before any byte (and
leaves no lock); a turn that cannot be saved is logged and counted, the answer is still delivered, and the
usage is charged exactly once."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reliability.support import (
    BAD_GATEWAY,
    THROTTLE,
    DynamoDBServer,
    captured_logs,
    counted,
    stored_usage,
)


async def test_a_conversation_that_cannot_be_loaded_is_a_503_before_the_stream(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, dynamodb_server: DynamoDBServer
) -> None:
    server = start_server()
    first = await server.message("hello")
    with dynamodb_server.faults(lambda operation, body: THROTTLE if operation == "Query" else None):
        refused = await server.message(
            json_body={"message": "again", "conversation_id": first.conversation_id}
        )
    assert refused.status == 503 and refused.error_body is not None
    assert refused.error_body["error"] == "unavailable"
    assert len(fake_anthropic.message_requests) == 1, "the model was not called"
    # Nothing half-done: the lock is free and the conversation carries on once the store is back.
    fake_anthropic.enqueue(Reply.text("back"))
    again = await server.message(json_body={"message": "again", "conversation_id": first.conversation_id})
    assert again.status == 200 and again.text == "back"


async def test_a_turn_that_cannot_be_saved_still_delivers_the_answer_and_charges_once(
    start_server: ServerFactory,
    fake_anthropic: FakeAnthropic,
    dynamodb_server: DynamoDBServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_server()
    fake_anthropic.enqueue(Reply.text("Here is your answer."))
    with (
        captured_logs() as logs,
        dynamodb_server.faults(
            # Every write of the conversations table (and only those) is throttled.
            lambda operation, body: THROTTLE if b"ChatbotConversations" in body else None
        ),
    ):
        stream = await server.message("hello", user="user_bob")
    assert stream.status == 200 and stream.text == "Here is your answer."
    assert stream.last["stop_reason"] == "end_turn"
    assert "not saved" in logs.text()
    assert '"ConversationSaveFailed":[1.0]' in capsys.readouterr().out, "the metric was emitted"
    charged = sum(counted(e) for e in stream.of("usage"))
    stored = stored_usage(dynamodb_server.endpoint, server.settings.chatbot_usage_table, "user#user_bob")
    assert stored["tokens"] == charged and stored["requests"] == 1
    assert (await server.message("next", user="user_bob")).status == 200, "the lock was released"


async def test_a_conversation_write_answered_by_an_html_error_page_still_ends_the_stream_with_done(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, dynamodb_server: DynamoDBServer
) -> None:
    # Found under load: an endpoint answering 5xx with a page botocore cannot parse was read as a bug, the
    # exception escaped the stream's task group, and the connection was cut mid-answer.
    server = start_server()
    fake_anthropic.enqueue(Reply.text("Here is your answer."))
    with (
        captured_logs() as logs,
        dynamodb_server.faults(
            lambda operation, body: BAD_GATEWAY if b"ChatbotConversations" in body else None
        ),
    ):
        stream = await server.message("hello", user="user_bob")
    assert stream.status == 200 and stream.text == "Here is your answer."
    assert stream.last["type"] == "done" and stream.last["stop_reason"] == "end_turn"
    assert "not saved" in logs.text()
    assert (await server.message("next", user="user_bob")).status == 200, "the lock was released"

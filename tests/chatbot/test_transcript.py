"""What one request writes to its conversation, and when (with a fake store): the opening at `begin`, the
rest at `finish` after it, and a failed write logged and counted once, never raised."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from chatbot import transcript as transcript_module
from chatbot.approval import PendingCall
from chatbot.context import Message
from chatbot.conversations import Conversation
from chatbot.errors import ChatbotError, NotFound, Unavailable
from chatbot.observability import RequestMetrics
from chatbot.transcript import Transcript

WAIT = 5.0


@dataclass
class FakeTurn:
    """What the transcript reads of a turn."""

    added: list[Message] = field(default_factory=list)
    pending: list[PendingCall] = field(default_factory=list)


class FakeStore:
    """Records each write (copies of what was passed); a write may be held until released, or fail."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, Any]] = []
        self.hold_begin: anyio.Event | None = None
        self.begin_entered = anyio.Event()
        self.fail: dict[str, ChatbotError] = {}

    async def begin(self, conversation: Conversation, messages: list[Message], request_id: str) -> None:
        self.begin_entered.set()
        if self.hold_begin is not None:
            await self.hold_begin.wait()
        self.writes.append(("begin", (conversation.id, list(messages), request_id)))
        if "begin" in self.fail:
            raise self.fail["begin"]

    async def finish(
        self,
        conversation: Conversation,
        messages: list[Message],
        pending: list[PendingCall],
        request_id: str,
    ) -> None:
        self.writes.append(("finish", (conversation.id, list(messages), list(pending), request_id)))
        if "finish" in self.fail:
            raise self.fail["finish"]

    async def take_pending(self, conversation: Conversation, calls: list[PendingCall]) -> None:
        self.writes.append(("take_pending", (conversation.id, [call.id for call in calls])))
        if "take_pending" in self.fail:
            raise self.fail["take_pending"]

    def steps(self) -> list[str]:
        return [step for step, _ in self.writes]


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def metric_events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The one-off metrics emitted during the test (`RequestMetrics.event`)."""
    emitted: list[str] = []
    monkeypatch.setattr(RequestMetrics, "event", classmethod(lambda cls, name: emitted.append(name)))
    return emitted


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The transcript's log lines, through a standard logger caplog can see."""
    monkeypatch.setattr(transcript_module, "logger", logging.getLogger("tests.transcript"))
    caplog.set_level(logging.WARNING, logger="tests.transcript")
    return caplog


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def answer(text: str) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def waiting(call_id: str) -> PendingCall:
    return PendingCall(call_id, "member_remove", {"email": "bob@acme.test"}, "Remove Bob", "req_0", 2e9)


def conversation() -> Conversation:
    return Conversation("conv_1", "user_alice", "org_acme", "Members", 1e9, 1e9)


def transcript_of(store: FakeStore, turn: FakeTurn, **extra: Any) -> Transcript:
    return Transcript(store, conversation(), "req_1", turn, **extra)  # type: ignore[arg-type]


async def test_begin_writes_the_opening_and_finish_writes_the_rest_with_the_waiting_calls(
    store: FakeStore,
) -> None:
    turn = FakeTurn(added=[user("Remove Bob")])
    transcript = transcript_of(store, turn)
    await transcript.begin()
    turn.added += [answer("Removing Bob."), answer("Waiting for you.")]
    turn.pending.append(waiting("toolu_1"))
    await transcript.finish()
    assert store.writes == [
        ("begin", ("conv_1", [user("Remove Bob")], "req_1")),
        (
            "finish",
            ("conv_1", [answer("Removing Bob."), answer("Waiting for you.")], [waiting("toolu_1")], "req_1"),
        ),
    ]


async def test_a_new_conversation_opens_with_its_seed_before_the_new_message(store: FakeStore) -> None:
    seed = [user("Earlier question"), answer("Earlier answer")]
    transcript = transcript_of(store, FakeTurn(added=[user("Now this")]), seed=seed)
    await transcript.begin()
    await transcript.finish()
    assert store.writes[0] == ("begin", ("conv_1", [*seed, user("Now this")], "req_1"))
    assert store.writes[1] == ("finish", ("conv_1", [], [], "req_1"))


async def test_the_opening_is_what_the_turn_had_when_the_transcript_was_made(store: FakeStore) -> None:
    turn = FakeTurn(added=[user("Hello")])
    transcript = transcript_of(store, turn)
    turn.added.append(answer("Hi!"))  # the model started answering before `begin` ran
    await transcript.begin()
    await transcript.finish()
    assert store.writes == [
        ("begin", ("conv_1", [user("Hello")], "req_1")),
        ("finish", ("conv_1", [answer("Hi!")], [], "req_1")),
    ]


async def test_an_approval_request_opens_with_nothing_and_finishes_with_the_results(store: FakeStore) -> None:
    turn = FakeTurn()
    transcript = transcript_of(store, turn)
    await transcript.begin()
    turn.added += [user("results"), answer("Done.")]
    await transcript.finish()
    assert store.writes == [
        ("begin", ("conv_1", [], "req_1")),
        ("finish", ("conv_1", [user("results"), answer("Done.")], [], "req_1")),
    ]


async def test_finish_waits_for_begin_to_be_written(store: FakeStore) -> None:
    store.hold_begin = anyio.Event()
    turn = FakeTurn(added=[user("Hello")])
    transcript = transcript_of(store, turn)
    turn.added.append(answer("Hi!"))
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(transcript.begin)
            await store.begin_entered.wait()
            tasks.start_soon(transcript.finish)
            await anyio.wait_all_tasks_blocked()
            assert store.steps() == []
            store.hold_begin.set()
    assert store.steps() == ["begin", "finish"]


async def test_a_begin_the_store_refuses_is_logged_and_counted_and_finish_writes_nothing(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    store.fail["begin"] = Unavailable("The conversation store is busy; please try again shortly.")
    turn = FakeTurn(added=[user("Hello")])
    transcript = transcript_of(store, turn)
    await transcript.begin()  # does not raise: the answer is still delivered
    turn.added.append(answer("Hi!"))
    await transcript.finish()
    assert store.steps() == ["begin"]
    errors = [r.getMessage() for r in logged.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "conv_1" in errors[0] and "begin" in errors[0] and "req_1" in errors[0]
    assert "busy" in errors[0]
    assert metric_events == ["ConversationSaveFailed"]


async def test_a_finish_waiting_on_a_begin_that_fails_writes_nothing(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    store.hold_begin = anyio.Event()
    store.fail["begin"] = NotFound("No such conversation.")
    transcript = transcript_of(store, FakeTurn(added=[user("Hello")]))
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(transcript.finish)
            tasks.start_soon(transcript.begin)
            await store.begin_entered.wait()
            store.hold_begin.set()
    assert store.steps() == ["begin"]
    assert metric_events == ["ConversationSaveFailed"]


async def test_a_finish_the_store_refuses_is_logged_and_counted_and_not_raised(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    store.fail["finish"] = Unavailable()
    transcript = transcript_of(store, FakeTurn(added=[user("Hello")]))
    await transcript.begin()
    await transcript.finish()
    errors = [r.getMessage() for r in logged.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "finish" in errors[0]
    assert metric_events == ["ConversationSaveFailed"]


async def test_a_written_request_logs_and_counts_nothing(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    transcript = transcript_of(store, FakeTurn(added=[user("Hello")]))
    await transcript.begin()
    await transcript.finish()
    assert logged.records == []
    assert metric_events == []


async def test_the_calls_a_new_message_declines_are_taken_after_the_opening_is_written(
    store: FakeStore,
) -> None:
    transcript = transcript_of(store, FakeTurn(added=[user("Never mind")]), declined=[waiting("toolu_1")])
    await transcript.begin()
    await transcript.finish()
    assert store.writes[:2] == [
        ("begin", ("conv_1", [user("Never mind")], "req_1")),
        ("take_pending", ("conv_1", ["toolu_1"])),
    ]
    assert store.steps() == ["begin", "take_pending", "finish"]


async def test_without_declined_calls_nothing_is_taken(store: FakeStore) -> None:
    transcript = transcript_of(store, FakeTurn(added=[user("Hello")]))
    await transcript.begin()
    assert store.steps() == ["begin"]


async def test_declined_calls_are_not_taken_when_the_opening_was_not_written(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    store.fail["begin"] = Unavailable()
    transcript = transcript_of(store, FakeTurn(added=[user("Never mind")]), declined=[waiting("toolu_1")])
    await transcript.begin()
    assert store.steps() == ["begin"]


async def test_declined_calls_that_cannot_be_taken_are_a_warning_and_the_rest_is_still_written(
    store: FakeStore, logged: pytest.LogCaptureFixture, metric_events: list[str]
) -> None:
    store.fail["take_pending"] = Unavailable()
    turn = FakeTurn(added=[user("Never mind")])
    transcript = transcript_of(store, turn, declined=[waiting("toolu_1")])
    await transcript.begin()
    turn.added.append(answer("OK."))
    await transcript.finish()
    assert store.steps() == ["begin", "take_pending", "finish"]
    assert [r.levelno for r in logged.records] == [logging.WARNING]
    assert "conv_1" in logged.records[0].getMessage()
    assert metric_events == []


async def test_a_finish_without_a_begin_writes_the_opening_first(store: FakeStore) -> None:
    # The request ended before the model said anything, so nothing began the transcript.
    turn = FakeTurn(added=[user("Hello")])
    transcript = transcript_of(store, turn)
    turn.added.append(answer("Hi!"))
    await transcript.finish()
    assert store.writes == [
        ("begin", ("conv_1", [user("Hello")], "req_1")),
        ("finish", ("conv_1", [answer("Hi!")], [], "req_1")),
    ]


async def test_the_opening_is_written_once_however_often_begin_is_called(store: FakeStore) -> None:
    store.hold_begin = anyio.Event()
    transcript = transcript_of(store, FakeTurn(added=[user("Hello")]), declined=[waiting("toolu_1")])
    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(transcript.begin)
            await store.begin_entered.wait()
            tasks.start_soon(transcript.begin)
            await anyio.wait_all_tasks_blocked()
            store.hold_begin.set()
    await transcript.begin()
    assert store.steps() == ["begin", "take_pending"]

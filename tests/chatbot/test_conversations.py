"""Conversations kept on the server (against moto DynamoDB): writing a request's start and end, loading the
newest messages within a budget, listing, renaming, deleting, expiry, ownership, and the chat sheet's view."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chatbot import paging
from chatbot.approval import PendingCall
from chatbot.context import Message, estimate
from chatbot.conversations import (
    NOT_FOUND,
    STORED_RESULT_CHARS,
    TITLE_CHARS,
    Conversation,
    ConversationStore,
    Loaded,
    title_of,
    view,
)
from chatbot.errors import InvalidRequest, NotFound

TABLE = "ChatbotConversations"
T0 = 1_900_000_000.0
DAY = 86400
RETENTION_DAYS = 30
ALICE = ("user_alice", "org_acme")


class Clock:
    """A clock the test moves by hand (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SmallPages:
    """Proxy of the DynamoDB client whose queries return at most `size` items a page (DynamoDB pages at 1 MB),
    counting the queries made."""

    def __init__(self, client: Any, size: int) -> None:
        self._client = client
        self._size = size
        self.queries = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "query":
            return method

        def query(**params: Any) -> Any:
            self.queries += 1
            return method(**{"Limit": self._size, **params})

        return query


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(dynamodb: Any, clock: Clock) -> ConversationStore:
    return ConversationStore(dynamodb, TABLE, RETENTION_DAYS, clock=clock)


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def answer(text: str, *calls: dict[str, Any]) -> Message:
    return {"role": "assistant", "content": [{"type": "text", "text": text}, *calls]}


def tool_use(
    call_id: str, name: str = "member_list", arguments: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments or {}}


def results(*blocks: dict[str, Any]) -> Message:
    return {"role": "user", "content": list(blocks)}


def result(call_id: str, content: str = '{"count":3}', status: str = "ok") -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": content,
        "is_error": status != "ok",
        "status": status,
    }


def pending_call(
    call_id: str, decide_by: float = T0 + 900, request_id: str = "req_1", position: int = 0
) -> PendingCall:
    return PendingCall(
        call_id,
        "member_remove",
        {"email": "bob@acme.test"},
        "Remove Bob Brown (bob@acme.test) from Acme Inc",
        request_id,
        decide_by,
        position,
    )


async def started(
    store: ConversationStore,
    text: str = "How many members do we have?",
    owner: tuple[str, str] = ALICE,
    request_id: str = "req_1",
) -> Conversation:
    """A conversation whose first request has begun."""
    conversation = store.new(*owner, text)
    await store.begin(conversation, [user(text)], request_id)
    return conversation


async def finished(
    store: ConversationStore,
    messages: list[Message],
    owner: tuple[str, str] = ALICE,
    pending: list[PendingCall] | None = None,
) -> Conversation:
    """A conversation of one whole request: `messages[0]` sent by the user, the rest added by the request."""
    conversation = store.new(*owner, messages[0]["content"])
    await store.begin(conversation, messages[:1], "req_1")
    await store.finish(conversation, messages[1:], pending or [], "req_1")
    return conversation


def items_of(client: Any, conversation_id: str) -> list[dict[str, Any]]:
    return client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"conv#{conversation_id}"}},
    )["Items"]


ONE_REQUEST = [
    user("How many members do we have?"),
    answer("Let me look.", tool_use("toolu_1")),
    results(result("toolu_1")),
    answer("Three."),
]


# -------------------------------------------------------------------------------- new, begin, finish


async def test_a_new_conversation_is_not_stored_until_its_first_request_begins(
    store: ConversationStore,
) -> None:
    conversation = store.new(*ALICE, "Hello")
    with pytest.raises(NotFound):
        await store.head(*ALICE, conversation.id)
    await store.begin(conversation, [user("Hello")], "req_1")
    assert (await store.head(*ALICE, conversation.id)).title == "Hello"


def test_a_new_conversation_has_a_fresh_id_a_title_from_its_first_message_and_the_clock_time(
    store: ConversationStore,
) -> None:
    first, second = store.new(*ALICE, "  How many\nmembers?  "), store.new(*ALICE, "Hello")
    assert first.id != second.id
    assert first.id.startswith("conv_")
    assert first.title == "How many members?"
    assert (first.user_id, first.org_id, first.owner) == ("user_alice", "org_acme", "org_acme#user_alice")
    assert first.created_at == first.updated_at == T0
    assert first.next_seq == 1


async def test_begin_stores_the_users_message_and_names_the_request_in_flight(
    store: ConversationStore, clock: Clock
) -> None:
    clock.advance(5)
    conversation = await started(store, request_id="req_first")
    head = await store.head(*ALICE, conversation.id)
    assert head.active_request == "req_first"
    assert head.awaiting_approval is False
    assert head.next_seq == 2
    assert head.updated_at == T0 + 5
    assert (await store.get(*ALICE, conversation.id)).history == [user("How many members do we have?")]


async def test_finish_stores_the_rest_of_the_request_in_order_and_clears_the_request_in_flight(
    store: ConversationStore,
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    loaded = await store.get(*ALICE, conversation.id)
    assert loaded.history == ONE_REQUEST
    assert loaded.pending == []
    assert loaded.conversation.active_request is None
    assert loaded.conversation.next_seq == len(ONE_REQUEST) + 1


async def test_the_private_status_of_a_result_is_stored_for_the_views(store: ConversationStore) -> None:
    conversation = await finished(
        store,
        [user("Remove Bob"), answer("", tool_use("toolu_1")), results(result("toolu_1", status="declined"))],
    )
    history = (await store.get(*ALICE, conversation.id)).history
    assert history[-1]["content"][0]["status"] == "declined"


async def test_a_later_request_continues_the_conversation_after_its_messages(
    store: ConversationStore, clock: Clock
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    clock.advance(60)
    loaded = await store.load(*ALICE, conversation.id, budget=10**6)
    following = loaded.conversation
    await store.begin(following, [user("And who is the admin?")], "req_2")
    assert (await store.head(*ALICE, conversation.id)).active_request == "req_2"
    await store.finish(following, [answer("Alice Anders.")], [], "req_2")
    loaded = await store.get(*ALICE, conversation.id)
    assert loaded.history == [*ONE_REQUEST, user("And who is the admin?"), answer("Alice Anders.")]
    assert loaded.conversation.created_at == T0
    assert loaded.conversation.updated_at == T0 + 60
    assert loaded.conversation.title == "How many members do we have?"


async def test_a_request_that_leaves_calls_waiting_marks_the_conversation_and_keeps_the_calls(
    store: ConversationStore,
) -> None:
    call = pending_call("toolu_9")
    conversation = await finished(
        store,
        [user("Remove Bob"), answer("I will remove Bob.", tool_use("toolu_9", "member_remove"))],
        pending=[call],
    )
    loaded = await store.load(*ALICE, conversation.id, budget=10**6)
    assert loaded.pending == [call]
    assert loaded.conversation.awaiting_approval is True
    listed, _ = await store.recent(*ALICE, limit=10, cursor=None)
    assert [c.summary()["awaiting_approval"] for c in listed] == [True]


async def test_waiting_calls_come_back_soonest_deadline_first(store: ConversationStore) -> None:
    late, early = pending_call("toolu_a", decide_by=T0 + 901), pending_call("toolu_b", decide_by=T0 + 900)
    conversation = await finished(store, [user("go"), answer("ok")], pending=[late, early])
    assert (await store.get(*ALICE, conversation.id)).pending == [early, late]


async def test_waiting_calls_of_one_request_come_back_in_the_order_they_were_asked(
    store: ConversationStore,
) -> None:
    # Calls asked in one model answer can share a deadline (the same clock reading): the order asked
    # (which the approvals and the results follow) must still be kept.
    asked = [
        pending_call("toolu_a", position=0),
        pending_call("toolu_c", position=1),
        pending_call("toolu_b", position=2),
    ]
    conversation = await finished(store, [user("go"), answer("ok")], pending=asked)
    assert (await store.get(*ALICE, conversation.id)).pending == asked


async def test_a_long_tool_result_is_stored_cut_with_a_note_and_a_short_one_whole(
    store: ConversationStore,
) -> None:
    long, short = "x" * (STORED_RESULT_CHARS + 500), "y" * STORED_RESULT_CHARS
    conversation = await finished(
        store,
        [
            user("List everything " + "z" * 5000),
            answer("Here. " + "w" * 5000, tool_use("toolu_1"), tool_use("toolu_2")),
            results(result("toolu_1", long), result("toolu_2", short)),
        ],
    )
    history = (await store.get(*ALICE, conversation.id)).history
    cut, whole = history[2]["content"]
    assert cut["content"].startswith("x" * STORED_RESULT_CHARS)
    assert cut["content"] != long
    assert len(cut["content"]) < len(long)
    assert "shortened" in cut["content"]
    assert cut["tool_use_id"] == "toolu_1" and cut["status"] == "ok"
    assert whole["content"] == short
    assert history[0]["content"] == "List everything " + "z" * 5000
    assert history[1]["content"][0]["text"] == "Here. " + "w" * 5000


async def test_many_messages_are_written_beyond_one_batch_in_order(store: ConversationStore) -> None:
    messages = [user("start")] + [m for i in range(30) for m in (answer(f"a{i}"), user(f"q{i}"))]
    conversation = await finished(store, messages)
    assert (await store.get(*ALICE, conversation.id)).history == messages


# ------------------------------------------------------------------------------------------ load


async def test_load_reads_the_newest_messages_covering_the_budget_and_returns_them_oldest_first(
    dynamodb: Any, clock: Clock
) -> None:
    client = SmallPages(dynamodb, size=3)
    store = ConversationStore(client, TABLE, RETENTION_DAYS, clock=clock)
    messages = [user(f"message number {i:02d}") for i in range(20)]
    conversation = await finished(store, messages)
    each = estimate(messages[0])
    client.queries = 0
    loaded = await store.load(*ALICE, conversation.id, budget=4 * each)
    history = loaded.history
    assert history == messages[-len(history) :]
    assert sum(estimate(m) for m in history) >= 4 * each
    assert len(history) < len(messages)
    assert client.queries < 20 / 3


async def test_load_reads_every_message_when_the_budget_allows(dynamodb: Any, clock: Clock) -> None:
    store = ConversationStore(SmallPages(dynamodb, size=3), TABLE, RETENTION_DAYS, clock=clock)
    messages = [user(f"message number {i:02d}") for i in range(20)]
    conversation = await finished(store, messages)
    assert (await store.load(*ALICE, conversation.id, budget=10**6)).history == messages
    assert (await store.get(*ALICE, conversation.id)).history == messages


async def test_load_finds_the_waiting_calls_even_when_the_budget_is_spent(
    dynamodb: Any, clock: Clock
) -> None:
    store = ConversationStore(SmallPages(dynamodb, size=2), TABLE, RETENTION_DAYS, clock=clock)
    calls = [pending_call("toolu_a"), pending_call("toolu_b", decide_by=T0 + 901)]
    conversation = await finished(store, [user(f"m{i}") for i in range(10)], pending=calls)
    loaded = await store.load(*ALICE, conversation.id, budget=0)
    assert loaded.pending == calls
    assert loaded.conversation.awaiting_approval


async def test_a_conversation_whose_state_is_gone_is_not_found_though_messages_remain(
    dynamodb: Any, store: ConversationStore
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": f"conv#{conversation.id}"}, "sk": {"S": "state"}})
    with pytest.raises(NotFound):
        await store.load(*ALICE, conversation.id, budget=10**6)


# ------------------------------------------------------------------------------ ownership, 404s


@pytest.mark.parametrize(
    "who",
    [("user_bob", "org_acme"), ("user_alice", "org_globex"), ("user_carol", "org_globex")],
    ids=["another-user", "same-user-other-organization", "other-organization"],
)
@pytest.mark.parametrize("operation", ["head", "load", "get", "rename", "delete"])
async def test_a_conversation_of_another_user_or_organization_is_the_same_not_found_as_a_missing_one(
    store: ConversationStore, who: tuple[str, str], operation: str
) -> None:
    conversation = await finished(store, ONE_REQUEST)

    async def attempt(owner: tuple[str, str], conversation_id: str) -> None:
        if operation == "head":
            await store.head(*owner, conversation_id)
        elif operation == "load":
            await store.load(*owner, conversation_id, budget=10**6)
        elif operation == "get":
            await store.get(*owner, conversation_id)
        elif operation == "rename":
            await store.rename(*owner, conversation_id, "Mine now")
        else:
            await store.delete(*owner, conversation_id)

    with pytest.raises(NotFound) as theirs:
        await attempt(who, conversation.id)
    with pytest.raises(NotFound) as missing:
        await attempt(ALICE, "conv_does_not_exist")
    assert theirs.value.message == missing.value.message == NOT_FOUND
    assert theirs.value.status == 404
    kept = await store.get(*ALICE, conversation.id)
    assert kept.history == ONE_REQUEST
    assert kept.conversation.title == "How many members do we have?"


async def test_another_users_conversations_are_never_listed(store: ConversationStore) -> None:
    mine = await started(store)
    await started(store, owner=("user_bob", "org_acme"))
    await started(store, owner=("user_alice", "org_globex"))
    listed, cursor = await store.recent(*ALICE, limit=10, cursor=None)
    assert [c.id for c in listed] == [mine.id]
    assert cursor is None or (await store.recent(*ALICE, limit=10, cursor=cursor))[0] == []


# ----------------------------------------------------------------------------------------- recent


async def test_recent_lists_the_most_recently_updated_first(store: ConversationStore, clock: Clock) -> None:
    first = await started(store, "first")
    clock.advance(10)
    second = await started(store, "second")
    clock.advance(10)
    third = await started(store, "third")
    clock.advance(10)
    await store.finish(first, [answer("updated")], [], "req_1")
    listed, _ = await store.recent(*ALICE, limit=10, cursor=None)
    assert [c.id for c in listed] == [first.id, third.id, second.id]
    assert [c.title for c in listed] == ["first", "third", "second"]
    assert listed[0].summary() == {
        "id": first.id,
        "title": "first",
        "created_at": "2030-03-17T17:46:40Z",
        "updated_at": "2030-03-17T17:47:10Z",
        "awaiting_approval": False,
    }


async def test_recent_pages_through_every_conversation_with_its_cursor(
    store: ConversationStore, clock: Clock
) -> None:
    made = []
    for i in range(7):
        made.append((await started(store, f"conversation {i}")).id)
        clock.advance(1)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page, cursor = await store.recent(*ALICE, limit=3, cursor=cursor)
        assert len(page) <= 3
        seen += [c.id for c in page]
        if cursor is None:
            break
    assert cursor is None
    assert seen == made[::-1]


async def test_recent_returns_at_most_the_limit_and_a_cursor_when_more_remain(
    store: ConversationStore, clock: Clock
) -> None:
    for i in range(3):
        await started(store, f"conversation {i}")
        clock.advance(1)
    page, cursor = await store.recent(*ALICE, limit=2, cursor=None)
    assert [c.title for c in page] == ["conversation 2", "conversation 1"]
    assert cursor is not None
    assert all(ch.isalnum() or ch in "-_" for ch in cursor)


async def test_recent_of_a_user_without_conversations_is_empty(store: ConversationStore) -> None:
    assert await store.recent("user_erin", "org_acme", limit=5, cursor=None) == ([], None)


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        paging.encode({"pk": {"S": "conv#x"}, "sk": {"S": "state"}}),
        paging.encode({"pk": {"S": "a"}, "sk": {"S": "b"}, "owner": {"S": "c"}, "updated_at": {"B": "d"}}),
        paging.encode({"pk": {"S": "a"}, "sk": {"S": "b"}, "owner": {"S": "c"}, "updated_at": {"N": 5}}),
        paging.encode(["pk", "sk", "owner", "updated_at"]),  # type: ignore[arg-type]
    ],
    ids=["garbage", "not-base64", "other-keys", "binary-value", "number-not-text", "not-an-object"],
)
async def test_a_cursor_this_api_did_not_return_is_an_invalid_request(
    store: ConversationStore, cursor: str
) -> None:
    await started(store)
    with pytest.raises(InvalidRequest) as refused:
        await store.recent(*ALICE, limit=5, cursor=cursor)
    assert refused.value.status == 400
    assert refused.value.message.startswith("cursor:")


# ------------------------------------------------------------------------------ rename and delete


async def test_rename_gives_a_new_title_and_keeps_the_rest(store: ConversationStore, clock: Clock) -> None:
    conversation = await finished(store, ONE_REQUEST)
    clock.advance(30)
    renamed = await store.rename(*ALICE, conversation.id, "Member count")
    assert renamed.title == "Member count"
    assert renamed.id == conversation.id
    head = await store.head(*ALICE, conversation.id)
    assert head.title == "Member count"
    assert head.next_seq == conversation.next_seq
    assert (await store.get(*ALICE, conversation.id)).history == ONE_REQUEST


async def test_delete_removes_the_conversation_and_every_item_for_good(
    dynamodb: Any, store: ConversationStore
) -> None:
    messages = [user("start")] + [m for i in range(20) for m in (answer(f"a{i}"), user(f"q{i}"))]
    conversation = await finished(store, messages, pending=[pending_call("toolu_1")])
    assert len(items_of(dynamodb, conversation.id)) == len(messages) + 2
    await store.delete(*ALICE, conversation.id)
    assert items_of(dynamodb, conversation.id) == []
    for read in (store.head(*ALICE, conversation.id), store.get(*ALICE, conversation.id)):
        with pytest.raises(NotFound):
            await read
    assert (await store.recent(*ALICE, limit=10, cursor=None))[0] == []
    with pytest.raises(NotFound):
        await store.delete(*ALICE, conversation.id)
    with pytest.raises(NotFound):
        await store.rename(*ALICE, conversation.id, "back")


async def test_deleting_one_conversation_leaves_the_others(store: ConversationStore) -> None:
    gone, kept = await finished(store, ONE_REQUEST), await finished(store, ONE_REQUEST)
    await store.delete(*ALICE, gone.id)
    assert (await store.get(*ALICE, kept.id)).history == ONE_REQUEST


async def test_a_request_that_ends_after_its_conversation_was_deleted_does_not_bring_it_back(
    dynamodb: Any, store: ConversationStore
) -> None:
    conversation = await started(store)
    await store.delete(*ALICE, conversation.id)
    with pytest.raises(NotFound):
        await store.finish(conversation, [answer("Three.")], [pending_call("toolu_1")], "req_1")
    assert items_of(dynamodb, conversation.id) == []
    with pytest.raises(NotFound):
        await store.head(*ALICE, conversation.id)


# ------------------------------------------------------------------------------------------ expiry


async def test_an_expired_conversation_is_not_found_and_not_listed(
    store: ConversationStore, clock: Clock
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    clock.advance(RETENTION_DAYS * DAY - 1)
    assert (await store.get(*ALICE, conversation.id)).history == ONE_REQUEST
    clock.advance(1)
    with pytest.raises(NotFound):
        await store.head(*ALICE, conversation.id)
    with pytest.raises(NotFound):
        await store.load(*ALICE, conversation.id, budget=10**6)
    with pytest.raises(NotFound):
        await store.get(*ALICE, conversation.id)
    with pytest.raises(NotFound):
        await store.rename(*ALICE, conversation.id, "revived")
    assert (await store.recent(*ALICE, limit=10, cursor=None))[0] == []


async def test_deleting_an_expired_conversation_is_the_same_not_found(
    store: ConversationStore, clock: Clock
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    clock.advance(RETENTION_DAYS * DAY)
    with pytest.raises(NotFound):
        await store.delete(*ALICE, conversation.id)


async def test_expired_messages_are_ignored_while_the_conversation_lives_on(
    store: ConversationStore, clock: Clock
) -> None:
    conversation = await finished(store, ONE_REQUEST)
    clock.advance(20 * DAY)
    await store.begin(conversation, [user("Still there?")], "req_2")
    await store.finish(conversation, [answer("Yes.")], [], "req_2")
    clock.advance(10 * DAY)
    loaded = await store.get(*ALICE, conversation.id)
    assert loaded.history == [user("Still there?"), answer("Yes.")]
    assert loaded.conversation.updated_at == T0 + 20 * DAY


async def test_expired_waiting_calls_are_ignored(store: ConversationStore, clock: Clock) -> None:
    conversation = await finished(
        store, [user("Remove Bob"), answer("ok")], pending=[pending_call("toolu_1")]
    )
    clock.advance(20 * DAY)
    await store.begin(conversation, [user("Anything else?")], "req_2")
    clock.advance(10 * DAY)
    assert (await store.get(*ALICE, conversation.id)).pending == []


# -------------------------------------------------------------------------------------- approvals


async def test_a_waiting_call_is_taken_once(store: ConversationStore) -> None:
    call = pending_call("toolu_1")
    conversation = await finished(store, [user("Remove Bob"), answer("ok")], pending=[call])
    await store.take_pending(conversation, [call])
    assert (await store.get(*ALICE, conversation.id)).pending == []
    with pytest.raises(InvalidRequest) as refused:
        await store.take_pending(conversation, [call])
    assert refused.value.status == 400
    assert "already decided" in refused.value.message


async def test_taking_waiting_calls_is_all_or_none(store: ConversationStore) -> None:
    first, second = pending_call("toolu_1"), pending_call("toolu_2", decide_by=T0 + 901)
    conversation = await finished(store, [user("Remove Bob"), answer("ok")], pending=[first, second])
    await store.take_pending(conversation, [second])
    with pytest.raises(InvalidRequest):
        await store.take_pending(conversation, [first, second])
    assert (await store.get(*ALICE, conversation.id)).pending == [first]


async def test_a_call_that_never_waited_cannot_be_taken(store: ConversationStore) -> None:
    conversation = await finished(store, [user("Remove Bob"), answer("ok")])
    with pytest.raises(InvalidRequest):
        await store.take_pending(conversation, [pending_call("toolu_never")])


# --------------------------------------------------------------------------------------------- view


def loaded_with(history: list[Message], pending: list[PendingCall] | None = None) -> Loaded:
    conversation = Conversation("conv_1", "user_alice", "org_acme", "Members", T0, T0 + 60, 9, bool(pending))
    return Loaded(conversation, history, pending or [])


def test_the_view_shows_the_conversation_and_each_message_as_the_chat_sheet_does() -> None:
    history = [
        user("How many members?"),
        answer("Let me look.", tool_use("toolu_1", arguments={"role": "admin"})),
        results(result("toolu_1", '{"count":1}')),
        answer("One admin."),
    ]
    assert view(loaded_with(history), {"request_id": "req_9", "last_event_id": 4}) == {
        "id": "conv_1",
        "title": "Members",
        "created_at": "2030-03-17T17:46:40Z",
        "updated_at": "2030-03-17T17:47:40Z",
        "awaiting_approval": False,
        "active_request": {"request_id": "req_9", "last_event_id": 4},
        "messages": [
            {"role": "user", "content": "How many members?"},
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "name": "member_list",
                        "input": {"role": "admin"},
                        "status": "ok",
                        "content": '{"count":1}',
                    }
                ],
            },
            {"role": "assistant", "content": "One admin.", "tool_calls": []},
        ],
    }


def test_the_view_gives_each_tool_call_its_outcome() -> None:
    history = [
        user("Do four things"),
        answer(
            "",
            tool_use("toolu_ok"),
            tool_use("toolu_error", "member_get"),
            tool_use("toolu_declined", "member_remove"),
            tool_use("toolu_refused", "member_remove"),
            tool_use("toolu_waiting", "member_update_role"),
            tool_use("toolu_lost"),
        ),
        results(
            result("toolu_ok"),
            result("toolu_error", "No such member.", status="error"),
            result("toolu_declined", "The user declined.", status="declined"),
            result("toolu_refused", "Not permitted.", status="not_permitted"),
        ),
    ]
    waiting = PendingCall("toolu_waiting", "member_update_role", {}, "Change the role of Bob", "req_1", T0)
    shown = view(loaded_with(history, [waiting]), None)
    calls = {call["id"]: call for call in shown["messages"][1]["tool_calls"]}
    assert {name: call["status"] for name, call in calls.items()} == {
        "toolu_ok": "ok",
        "toolu_error": "error",
        "toolu_declined": "declined",
        "toolu_refused": "not_permitted",
        "toolu_waiting": "awaiting_approval",
        "toolu_lost": "error",
    }
    assert calls["toolu_waiting"]["summary"] == "Change the role of Bob"
    assert calls["toolu_declined"]["content"] == "The user declined."
    assert calls["toolu_lost"]["content"] is None
    assert shown["awaiting_approval"] is True
    assert shown["active_request"] is None
    assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]


def test_a_result_without_a_status_follows_is_error() -> None:
    history = [
        user("q"),
        answer("", tool_use("toolu_1"), tool_use("toolu_2")),
        results(
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "fine"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bad", "is_error": True},
        ),
    ]
    calls = view(loaded_with(history), None)["messages"][1]["tool_calls"]
    assert [call["status"] for call in calls] == ["ok", "error"]


def test_the_view_shows_what_the_user_typed_beside_the_results_it_declines() -> None:
    history = [
        user("Remove Bob"),
        answer("Removing.", tool_use("toolu_1", "member_remove")),
        results(result("toolu_1", "declined", status="declined"), {"type": "text", "text": "No, wait."}),
    ]
    shown = view(loaded_with(history), None)
    assert [(m["role"], m["content"]) for m in shown["messages"]] == [
        ("user", "Remove Bob"),
        ("assistant", "Removing."),
        ("user", "No, wait."),
    ]
    assert shown["messages"][1]["tool_calls"][0]["status"] == "declined"


def test_the_view_joins_the_text_blocks_of_a_message() -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]
    messages = view(loaded_with(history), None)["messages"]
    assert [m["content"] for m in messages] == ["one\ntwo", "ab"]


async def test_the_view_of_a_stored_conversation_round_trips(store: ConversationStore) -> None:
    call = pending_call("toolu_9")
    conversation = await finished(
        store,
        [
            user("Remove Bob"),
            answer("Removing Bob.", tool_use("toolu_9", "member_remove", {"email": "bob@acme.test"})),
        ],
        pending=[call],
    )
    shown = view(await store.get(*ALICE, conversation.id), None)
    assert shown["id"] == conversation.id
    assert shown["awaiting_approval"] is True
    assert shown["messages"][1]["tool_calls"] == [
        {
            "id": "toolu_9",
            "name": "member_remove",
            "input": {"email": "bob@acme.test"},
            "status": "awaiting_approval",
            "content": None,
            "summary": call.summary,
        }
    ]
    assert json.loads(json.dumps(shown)) == shown


# --------------------------------------------------------------------------------------------- titles


def test_a_short_first_message_is_the_title_on_one_line() -> None:
    assert title_of("  How many\n\tmembers   do we have?  ") == "How many members do we have?"
    assert title_of("x" * TITLE_CHARS) == "x" * TITLE_CHARS


def test_a_long_first_message_is_cut_at_a_word_with_an_ellipsis() -> None:
    text = "Please list every member of the organization together with their roles and emails"
    title = title_of(text)
    assert title.endswith("…")
    assert len(title) <= TITLE_CHARS
    words = title.removesuffix("…").split(" ")
    assert words == text.split(" ")[: len(words)]
    assert len(title) > TITLE_CHARS // 2


def test_a_long_first_message_without_spaces_near_the_end_is_cut_hard() -> None:
    title = title_of("a " + "b" * 100)
    assert title == "a " + "b" * (TITLE_CHARS - 3) + "…"
    assert len(title) == TITLE_CHARS


def test_an_empty_first_message_gives_an_empty_title() -> None:
    assert title_of(" \n ") == ""

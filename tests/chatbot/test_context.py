"""The model's context rebuilt from stored messages: turns, trimming oldest turns first to a budget, and a
context the Messages API accepts (user first, roles alternating, every result after its call)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

from chatbot.context import (
    Message,
    appended,
    blocks,
    build,
    estimate,
    for_model,
    starts_turn,
    turns,
    valid,
)

BIG = 10**9


def user(text: str) -> Message:
    return {"role": "user", "content": text}


def said(*content: dict[str, Any]) -> Message:
    return {"role": "assistant", "content": list(content)}


def results(*content: dict[str, Any]) -> Message:
    return {"role": "user", "content": list(content)}


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def call(call_id: str, name: str = "member_list") -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": {}}


def result(call_id: str, content: str = "{}", status: str = "ok") -> dict[str, Any]:
    return {
        "type": "tool_result",
        "tool_use_id": call_id,
        "content": content,
        "is_error": status != "ok",
        "status": status,
    }


def user_blocks(*content: dict[str, Any]) -> Message:
    return {"role": "user", "content": list(content)}


def sent(messages: list[Message]) -> list[Message]:
    """`messages` as the API gets them: content as blocks, without our private `status`."""
    return [
        {"role": m["role"], "content": [{k: v for k, v in b.items() if k != "status"} for b in blocks(m)]}
        for m in messages
    ]


def size(messages: list[Message]) -> int:
    return sum(estimate(m) for m in messages)


def tool_ids(messages: list[Message], kind: str) -> list[str]:
    key = "id" if kind == "tool_use" else "tool_use_id"
    return [b[key] for m in messages for b in blocks(m) if b.get("type") == kind]


def assert_acceptable(messages: list[Message]) -> None:
    """What the Messages API requires of a context."""
    assert messages, "a context is never empty"
    assert messages[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(messages))
    asked: set[str] = set()
    for message in messages:
        for block in blocks(message):
            assert "status" not in block
            if block.get("type") == "tool_use":
                asked.add(block["id"])
            if block.get("type") == "tool_result":
                assert block["tool_use_id"] in asked, f"result {block['tool_use_id']} before its call"


# A conversation of three turns: a question answered with a tool, a question answered in words, and a
# question whose change waits for approval.
TURN_1 = [
    user("How many members do we have?"),
    said(text("Let me look."), call("toolu_1")),
    results(result("toolu_1", '{"count":3}')),
    said(text("Three.")),
]
TURN_2 = [user("Thanks! Who is the admin?"), said(text("Alice Anders."))]
TURN_3 = [user("Remove Bob."), said(text("I will remove Bob."), call("toolu_3", "member_remove"))]
HISTORY = TURN_1 + TURN_2 + TURN_3


# ------------------------------------------------------------------------------------------- turns


def test_something_the_user_typed_starts_a_turn_and_a_tool_result_does_not() -> None:
    assert starts_turn(user("hello"))
    assert starts_turn(results(result("toolu_1", status="declined"), text("Do something else")))
    assert not starts_turn(results(result("toolu_1")))
    assert not starts_turn(said(text("Hello")))


def test_a_plain_string_is_one_text_block() -> None:
    assert blocks(user("hello")) == [text("hello")]
    assert blocks(said(text("a"), call("toolu_1"))) == [text("a"), call("toolu_1")]


def test_the_estimate_counts_utf8_bytes_so_it_never_undercounts_other_scripts() -> None:
    ascii_only, accented = estimate(user("e" * 100)), estimate(user("é" * 100))
    assert accented - ascii_only == 100
    assert estimate(user("e" * 200)) > ascii_only


def test_messages_are_cut_into_turns_each_starting_with_what_the_user_typed() -> None:
    assert turns(HISTORY) == [TURN_1, TURN_2, TURN_3]


def test_messages_before_the_first_thing_the_user_typed_belong_to_no_turn() -> None:
    orphans = [said(text("left over")), results(result("toolu_0"))]
    assert turns(orphans + TURN_2) == [TURN_2]
    assert turns(orphans) == []


# ------------------------------------------------------------------------------------------- build


def test_a_history_that_fits_is_kept_whole_followed_by_the_new_message() -> None:
    incoming = [user("And how many invitations?")]
    context = build(HISTORY[:-2], incoming, BIG)
    assert context == sent(TURN_1 + TURN_2 + incoming)
    assert_acceptable(context)


def test_the_oldest_turns_are_dropped_first_to_stay_within_the_budget() -> None:
    incoming = [user("And now?")]
    history = TURN_1 + TURN_2 + [user("Who is Erin?"), said(text("A viewer."))]
    budget = size(history[-4:]) + size(incoming)
    context = build(history, incoming, budget)
    assert context == sent(history[-4:] + incoming)
    assert build(history, incoming, budget - 1) == sent(history[-2:] + incoming)


def test_a_turn_that_does_not_fit_whole_is_dropped_whole_never_split_from_its_results() -> None:
    incoming = [user("And now?")]
    # Room for the last two messages of the first turn (its tool result and answer), but not for it all.
    budget = size(TURN_1[2:]) + size(TURN_2) + size(incoming)
    context = build(TURN_1 + TURN_2, incoming, budget)
    assert context == sent(TURN_2 + incoming)
    assert tool_ids(context, "tool_result") == []


def test_an_older_turn_is_not_kept_once_a_newer_one_was_dropped() -> None:
    small_old, big, small_new = [user("a"), said(text("b"))], TURN_1, [user("c"), said(text("d"))]
    incoming = [user("e")]
    budget = size(small_old) + size(small_new) + size(incoming)
    assert build(small_old + big + small_new, incoming, budget) == sent(small_new + incoming)


def test_with_a_new_message_over_the_budget_no_history_is_kept() -> None:
    incoming = [user("x" * 5000)]
    assert build(HISTORY, incoming, budget=100) == sent(incoming)
    assert build(HISTORY, incoming, budget=0) == sent(incoming)


def test_without_a_new_message_the_last_turn_is_kept_even_over_the_budget() -> None:
    # An approval continues the last turn: it is the one the results are about to join.
    context = build(HISTORY, [], budget=1)
    assert context == sent(TURN_3)
    assert tool_ids(context, "tool_use") == ["toolu_3"]


def test_without_a_new_message_older_turns_still_count_against_the_budget() -> None:
    budget = size(TURN_2) + size(TURN_3)
    assert build(HISTORY, [], budget) == sent(TURN_2 + TURN_3)


def test_an_empty_history_gives_just_the_new_message() -> None:
    incoming = [user("Hello")]
    assert build([], incoming, BIG) == sent(incoming)
    assert build([], [], BIG) == []


def test_a_waiting_call_is_dropped_when_the_user_types_a_new_message_without_deciding_it() -> None:
    # Its pending record was lost, so the new message carries no result for it: the API would refuse it.
    context = build(HISTORY, [user("Never mind.")], BIG)
    assert "toolu_3" not in tool_ids(context, "tool_use")
    assert context[-2] == said(text("I will remove Bob."))
    assert_acceptable(context)


def test_a_declined_call_keeps_its_call_and_result_when_the_new_message_declines_it() -> None:
    incoming = [results(result("toolu_3", "declined", status="declined"), text("Never mind."))]
    context = build(HISTORY, incoming, BIG)
    assert tool_ids(context, "tool_use")[-1] == "toolu_3"
    assert context[-1] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "toolu_3", "content": "declined", "is_error": True},
            text("Never mind."),
        ],
    }
    assert_acceptable(context)


def test_a_declined_result_whose_call_was_trimmed_away_is_dropped_and_the_text_stays() -> None:
    incoming = [results(result("toolu_3", "declined", status="declined"), text("Never mind."))]
    context = build(HISTORY, incoming, budget=size(incoming))
    assert context == [user_blocks(text("Never mind."))]


def test_build_leaves_the_stored_history_as_it_was() -> None:
    history = copy.deepcopy(HISTORY)
    build(history, [user("again")], BIG)
    assert history == HISTORY


# ------------------------------------------------------------------------------------------- valid


def test_consecutive_messages_of_one_role_are_merged_in_order() -> None:
    context = valid([user("one"), user("two"), said(text("a")), said(text("b"))])
    assert context == [user_blocks(text("one"), text("two")), said(text("a"), text("b"))]


def test_results_and_a_typed_message_in_a_row_become_one_user_message() -> None:
    context = valid([user("q"), said(call("toolu_1")), results(result("toolu_1")), user("next")])
    assert [m["role"] for m in context] == ["user", "assistant", "user"]
    assert [b["type"] for b in context[-1]["content"]] == ["tool_result", "text"]


def test_a_tool_result_without_its_call_is_dropped() -> None:
    context = valid([user("q"), results(result("toolu_gone")), said(text("answer"))])
    assert context == [user_blocks(text("q")), said(text("answer"))]


def test_a_result_that_comes_before_its_call_is_dropped() -> None:
    context = valid([user("q"), results(result("toolu_1")), said(call("toolu_1"))])
    assert tool_ids(context, "tool_result") == []


def test_a_call_that_lost_its_result_before_the_last_typed_message_is_dropped_with_nothing_else() -> None:
    context = valid([user("q"), said(text("Let me look."), call("toolu_1")), user("hello?")])
    assert context == [user_blocks(text("q")), said(text("Let me look.")), user_blocks(text("hello?"))]


def test_an_assistant_message_left_empty_disappears_and_its_neighbours_merge() -> None:
    context = valid([user("q"), said(call("toolu_1")), user("hello?")])
    assert context == [user_blocks(text("q"), text("hello?"))]
    assert_acceptable(context)


def test_calls_after_the_last_typed_message_are_kept_while_they_wait_for_results() -> None:
    context = valid([user("q"), said(text("Removing."), call("toolu_1"), call("toolu_2"))])
    assert tool_ids(context, "tool_use") == ["toolu_1", "toolu_2"]
    assert context[-1]["role"] == "assistant"


def test_answered_calls_of_earlier_turns_keep_their_results() -> None:
    context = valid([*HISTORY, user("next")])
    assert tool_ids(context, "tool_use") == ["toolu_1"]
    assert tool_ids(context, "tool_result") == ["toolu_1"]
    assert_acceptable(context)


def test_a_context_starts_with_a_users_message() -> None:
    context = valid([said(text("Hello, how can I help?")), user("hi")])
    assert context == [user_blocks(text("hi"))]


def test_a_context_never_starts_with_a_result_whose_call_was_cut_off() -> None:
    # A leading assistant message is dropped; a result of one of its calls must go with it.
    context = valid([said(call("toolu_1")), results(result("toolu_1"), text("and then?"))])
    assert context == [user_blocks(text("and then?"))]


def test_messages_with_no_content_are_dropped() -> None:
    context = valid([user("q"), {"role": "assistant", "content": []}, user("again")])
    assert context == [user_blocks(text("q"), text("again"))]


def test_the_private_status_key_never_reaches_the_model() -> None:
    context = valid([user("q"), said(call("toolu_1")), results(result("toolu_1", status="not_permitted"))])
    assert context[-1]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{}", "is_error": True}
    ]
    assert_acceptable(context)


def test_valid_leaves_its_input_as_it_was() -> None:
    messages = [user("q"), said(call("toolu_1")), results(result("toolu_1")), results(result("x"))]
    before = copy.deepcopy(messages)
    valid(messages)
    assert messages == before


# ------------------------------------------------------------------------------ for_model, appended


def test_for_model_strips_the_status_and_keeps_every_other_key() -> None:
    stored = results(result("toolu_1", "boom", status="declined"))
    assert for_model(stored) == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True}],
    }
    assert stored["content"][0]["status"] == "declined"


def test_for_model_returns_a_plain_text_message_as_it_is() -> None:
    assert for_model(user("hello")) == user("hello")


def test_appended_adds_a_message_of_the_other_role_without_its_status() -> None:
    messages = [user_blocks(text("q"))]
    out = appended(messages, said(text("a"), call("toolu_1")))
    assert out == [user_blocks(text("q")), said(text("a"), call("toolu_1"))]
    assert messages == [user_blocks(text("q"))]


def test_appended_merges_into_a_last_message_of_the_same_role() -> None:
    messages = [user_blocks(text("q")), said(call("toolu_1")), user_blocks(text("typed meanwhile"))]
    out = appended(messages, results(result("toolu_1", status="declined")))
    assert len(out) == 3
    assert out[-1] == user_blocks(
        text("typed meanwhile"),
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "{}", "is_error": True},
    )
    assert messages[-1] == user_blocks(text("typed meanwhile"))

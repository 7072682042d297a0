"""Approval of changes in the chat sheet, in Chromium against the real app and the fake Anthropic API: a
change the model asks for waits on a card (what it would do, its input behind a disclosure, Approve / Deny);
the decision goes to the server and the answer streams on in the same reply."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import ChatPage, member_emails, pending_invitations
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall, tool_result_text, tool_results

pytestmark = pytest.mark.browser

REMOVE_BOB = "Remove Bob Brown (bob@acme.test) from Acme Inc"


def _ask_to_remove_bob(chat: ChatPage, fake_anthropic: FakeAnthropic, answer: str) -> None:
    fake_anthropic.enqueue(
        Reply.tool_use(
            "member_remove", {"email": "bob@acme.test"}, text_before="I'll remove Bob.", id="toolu_remove_bob"
        ),
        Reply.text(answer, chunks=6, delay=0.03),
    )
    chat.open()
    chat.send("Please remove Bob from the team")


def _results_sent_to_the_model(fake_anthropic: FakeAnthropic) -> list[str]:
    body = fake_anthropic.message_requests[-1].body
    assert body is not None
    return [tool_result_text(block) for block in tool_results(body)]


def test_a_removal_waits_on_a_card_and_approve_runs_it_and_the_answer_streams_on_in_the_same_reply(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    _ask_to_remove_bob(chat, fake_anthropic, "Done: **Bob Brown** is no longer a member.")
    card = chat.approvals
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "awaiting")
    expect(card.locator(".cb-approval-summary")).to_have_text(REMOVE_BOB)
    expect(chat.page.get_by_role("group", name=REMOVE_BOB)).to_be_visible()
    # The reply waits for the user, not for the server: nothing is in flight, and nothing changed yet.
    chat.wait_idle()
    expect(chat.replies.last).to_have_attribute("data-status", "awaiting")
    assert "bob@acme.test" in member_emails(server)
    # The input is behind a disclosure.
    input_text = card.locator(".cb-tool-pre").first
    expect(input_text).to_be_hidden()
    card.get_by_text("Details").click()
    expect(input_text).to_be_visible()
    expect(input_text).to_contain_text('"email": "bob@acme.test"')

    approve = card.get_by_role("button", name="Approve")
    expect(card.get_by_role("button", name="Deny")).to_be_enabled()
    approve.click()
    expect(card).to_have_attribute("data-status", "done")
    expect(card.locator(".cb-approval-badge")).to_have_text("Approved")
    reply = chat.replies.last
    expect(reply.locator("strong")).to_have_text("Bob Brown")
    chat.wait_idle()
    expect(reply).to_have_attribute("data-status", "done")
    expect(chat.replies).to_have_count(1)
    # In the order things happened: what the model said first, the card, then the rest of the answer.
    expect(reply.locator(".cb-parts > *")).to_have_count(3)
    expect(reply.locator(".cb-parts > *").first).to_have_text("I'll remove Bob.")
    assert "bob@acme.test" not in member_emails(server)
    assert chat.posts[-1] == {
        "conversation_id": chat.conversation_id(),
        "approvals": {"toolu_remove_bob": True},
    }
    [result] = _results_sent_to_the_model(fake_anthropic)
    assert "bob@acme.test" in result and "removed" in result
    expect(chat.sheet.get_by_role("alert")).to_have_count(0)
    assert chat.errors == []


def test_deny_shows_declined_and_changes_nothing(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    _ask_to_remove_bob(chat, fake_anthropic, "All right, Bob stays.")
    card = chat.approvals
    card.get_by_role("button", name="Deny").click()
    expect(card).to_have_attribute("data-status", "declined")
    expect(card.locator(".cb-approval-badge")).to_have_text("Declined")
    expect(card).to_contain_text("Not carried out.")
    expect(card.get_by_role("button", name="Approve")).to_be_hidden()
    expect(chat.replies.last).to_contain_text("All right, Bob stays.")
    chat.wait_idle()
    expect(chat.replies).to_have_count(1)
    assert "bob@acme.test" in member_emails(server)
    assert chat.posts[-1]["approvals"] == {"toolu_remove_bob": False}
    [result] = _results_sent_to_the_model(fake_anthropic)
    assert "declined" in result
    assert chat.errors == []


def test_two_waiting_calls_are_decided_in_one_request(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_uses(
            ToolCall("member_remove", {"email": "bob@acme.test"}, id="toolu_bob"),
            ToolCall("invitation_cancel", {"email": "gina@acme.test"}, id="toolu_gina"),
            text_before="Two changes, then.",
        ),
        Reply.text("Bob was removed; Gina's invitation stays."),
    )
    chat.open()
    chat.send("Remove Bob and cancel Gina's invitation")
    cards = chat.approvals
    expect(cards).to_have_count(2)
    bob, gina = cards.nth(0), cards.nth(1)
    expect(bob.locator(".cb-approval-summary")).to_have_text(REMOVE_BOB)
    expect(gina.locator(".cb-approval-summary")).to_have_text(
        "Cancel the invitation of gina@acme.test to Acme Inc"
    )
    chat.wait_idle()
    bob.get_by_role("button", name="Approve").click()
    # The first decision waits for the second: nothing is sent yet, and focus moves on to the next card.
    expect(bob).to_contain_text("You approved this. Decide the other action to continue.")
    expect(bob.get_by_role("button", name="Approve")).to_be_disabled()
    expect(gina.get_by_role("button", name="Approve")).to_be_focused()
    assert len(chat.posts) == 1
    gina.get_by_role("button", name="Deny").click()
    expect(bob).to_have_attribute("data-status", "done")
    expect(gina).to_have_attribute("data-status", "declined")
    expect(chat.replies.last).to_contain_text("Gina's invitation stays.")
    chat.wait_idle()
    assert [post.get("approvals") for post in chat.posts] == [None, {"toolu_bob": True, "toolu_gina": False}]
    assert "bob@acme.test" not in member_emails(server)
    assert "gina@acme.test" in pending_invitations(server)
    assert len(_results_sent_to_the_model(fake_anthropic)) == 2
    assert chat.errors == []


def test_a_card_left_waiting_is_shown_again_after_a_reload_and_can_still_be_approved(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    _ask_to_remove_bob(chat, fake_anthropic, "Bob has been removed.")
    expect(chat.approvals).to_have_attribute("data-status", "awaiting")
    chat.wait_idle()
    chat.reload().open()
    card = chat.approvals
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-status", "awaiting")
    expect(card.locator(".cb-approval-summary")).to_have_text(REMOVE_BOB)
    card.get_by_role("button", name="Approve").click()
    expect(card).to_have_attribute("data-status", "done")
    expect(chat.replies.last).to_contain_text("Bob has been removed.")
    expect(chat.replies).to_have_count(1)
    assert "bob@acme.test" not in member_emails(server)
    assert chat.errors == []


def test_a_new_message_instead_of_a_decision_declines_the_waiting_call(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    _ask_to_remove_bob(chat, fake_anthropic, "unused")
    card = chat.approvals
    expect(card).to_have_attribute("data-status", "awaiting")
    chat.wait_idle()
    fake_anthropic.clear()
    fake_anthropic.enqueue(Reply.text("Fine, I left Bob alone."))
    chat.send("Actually, never mind")
    expect(chat.replies.last).to_contain_text("Fine, I left Bob alone.")
    expect(card).to_have_attribute("data-status", "declined")
    expect(card.locator(".cb-approval-badge")).to_have_text("Declined")
    chat.wait_idle()
    expect(chat.replies).to_have_count(2)
    assert "bob@acme.test" in member_emails(server)
    assert "declined" in _results_sent_to_the_model(fake_anthropic)[0]
    # The server agrees: after a reload the call still shows as declined.
    chat.reload().open()
    expect(chat.approvals).to_have_count(0)
    expect(chat.page.locator("chatbot-sheet .cb-tool[data-tool='member_remove']")).to_have_attribute(
        "data-status", "declined"
    )
    assert chat.errors == []

"""What the page offers depends on the role, in Chromium against the real app: the sheet suggests only what
the caller's role can do, and the Team page's <chatbot-activity> shows the assistant's audit trail to owners
and admins only."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import ChatPage
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply

pytestmark = pytest.mark.browser

INVITE = "Invite gina@acme.test as a member"


def _suggestions(chat: ChatPage) -> list[str]:
    texts: list[str] = chat.page.locator("chatbot-sheet .cb-suggestion").all_text_contents()
    return texts


def test_a_member_is_not_offered_to_invite_and_an_admin_is(
    server: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    bob = ChatPage(new_context().new_page(), server).goto(user="user_bob").open()
    expect(bob.sheet.get_by_text("Hi Bob, how can I help?")).to_be_visible()
    # Once the role is known (from /usage), the suggestions are those a member can act on.
    expect(bob.sheet.get_by_role("button", name="Who are the admins here?")).to_be_visible()
    assert _suggestions(bob) == ["Who are the admins here?"]
    expect(bob.sheet.get_by_role("button", name=INVITE)).to_have_count(0)

    alice = ChatPage(new_context().new_page(), server).goto(user="user_alice").open()
    expect(alice.sheet.get_by_role("button", name=INVITE)).to_be_visible()
    assert _suggestions(alice) == ["Who are the admins here?", "Show pending invitations", INVITE]


def test_switching_to_a_member_takes_the_admins_suggestions_away(chat: ChatPage) -> None:
    chat.open()
    expect(chat.sheet.get_by_role("button", name=INVITE)).to_be_visible()
    chat.page.keyboard.press("Escape")
    chat.page.get_by_label("Demo user").select_option("user_bob")
    chat.open()
    expect(chat.sheet.get_by_text("Hi Bob, how can I help?")).to_be_visible()
    expect(chat.sheet.get_by_role("button", name="Who are the admins here?")).to_be_visible()
    expect(chat.sheet.get_by_role("button", name=INVITE)).to_have_count(0)


def test_the_activity_on_the_team_page_shows_an_approved_removal_to_an_admin(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    activity = chat.page.get_by_role("table", name="Assistant activity")
    expect(chat.page.get_by_role("heading", name="Assistant activity")).to_be_visible()
    expect(chat.page.locator("chatbot-activity").get_by_text("No activity yet.")).to_be_visible()
    fake_anthropic.enqueue(
        Reply.tool_use("member_remove", {"email": "bob@acme.test"}, id="toolu_remove_bob"),
        Reply.text("Bob is no longer a member."),
    )
    chat.open()
    chat.send("Remove Bob")
    chat.approvals.get_by_role("button", name="Approve").click()
    expect(chat.replies.last).to_contain_text("Bob is no longer a member.")
    chat.wait_idle()
    chat.page.keyboard.press("Escape")
    chat.page.locator("chatbot-activity").get_by_role("button", name="Refresh").click()
    rows = chat.page.locator("chatbot-activity .cb-activity-table tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-status", "ok")
    cells = row.get_by_role("cell")
    expect(cells.nth(1)).to_have_text("user_alice")
    expect(cells.nth(2)).to_have_text("member_remove")
    expect(cells.nth(3)).to_have_text("Succeeded")
    expect(cells.nth(4)).to_have_text("Yes")
    expect(cells.nth(5)).to_have_text("Chat")
    expect(activity.get_by_role("columnheader")).to_have_text(
        ["Time", "User", "Tool", "Status", "Approved", "Via", "Details"]
    )
    row.get_by_text("Show").click()
    expect(row.locator(".cb-tool-pre").first).to_contain_text('"email": "bob@acme.test"')
    expect(row.locator(".cb-tool-pre").nth(1)).to_contain_text("bob@acme.test")
    # A reload lists it again (it is the server's record, not the page's memory).
    chat.reload()
    expect(rows).to_have_count(1)
    # Filtered by user: another user's activity is empty.
    panel = chat.page.locator("chatbot-activity")
    panel.get_by_role("combobox", name="User").fill("user_bob")
    panel.get_by_role("button", name="Filter").click()
    expect(panel.get_by_role("status")).to_have_text("No activity for user_bob.")
    expect(rows).to_have_count(0)
    panel.get_by_role("combobox", name="User").fill("user_alice")
    panel.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    assert chat.errors == []


def test_the_activity_is_not_shown_to_a_member(
    server: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context().new_page()
    audit_requests: list[str] = []
    page.on(
        "request",
        lambda request: audit_requests.append(request.url) if "/api/chatbot/audit" in request.url else None,
    )
    bob = ChatPage(page, server).goto(user="user_bob")
    expect(page.get_by_role("heading", name="Team")).to_be_visible()
    expect(page.locator("chatbot-activity")).to_be_hidden()
    expect(page.get_by_role("table", name="Assistant activity")).to_have_count(0)
    expect(page.get_by_role("heading", name="Assistant activity")).to_have_count(0)
    assert audit_requests == [], "the page did not even ask"
    # Were a host to show it to a member anyway, the element says plainly that it is not for them.
    page.evaluate(
        """() => {
          const activity = document.querySelector('chatbot-activity');
          activity.hidden = false;
          activity.getToken = document.querySelector('chatbot-sheet').getToken;
        }"""
    )
    expect(page.locator("chatbot-activity").get_by_role("alert")).to_have_text(
        "Only owners and admins can see the activity."
    )
    expect(page.locator("chatbot-activity .cb-activity-table tbody tr")).to_have_count(0)
    # Nor is the usage report: its section goes (the one message above speaks for the element).
    expect(page.locator("chatbot-activity").get_by_role("heading", name="Usage")).to_have_count(0)
    assert bob.errors == []

"""The README's screenshots, taken from the real sheet in the states they show. Each test checks the
state it photographs; with UPDATE_SCREENSHOTS=1 the images are written to docs/ (else to a temp dir)."""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import DOCS, ChatPage, ToolGate, run_async
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply, demo_responder

pytestmark = pytest.mark.browser


# The activity's page: the usage report above the audit trail.
HEIGHT = 1700


def _target(tmp_path: Path, name: str) -> Path:
    return (DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path) / name


def _background(chat: ChatPage) -> str:
    color: str = chat.page.evaluate(
        "() => getComputedStyle(document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-sheet'))"
        ".backgroundColor"
    )
    return color


def test_desktop_light_screenshot_shows_a_finished_conversation(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    fake_anthropic.set_responder(lambda request: demo_responder(request, delay=0.005))
    chat = ChatPage(new_context(color_scheme="light").new_page(), server).goto().open()
    chat.send("Who are the admins here?")
    expect(chat.replies.last.locator("table")).to_contain_text("Alice Anders")
    chat.wait_idle()
    chat.send("List the members")
    expect(chat.replies.last.locator("table tbody tr")).to_have_count(3)
    chat.wait_idle()
    assert _background(chat) == "rgb(255, 255, 255)"
    chat.page.screenshot(path=_target(tmp_path, "screenshot-desktop-light.png"))


def test_mobile_dark_screenshot_shows_a_full_width_dark_sheet(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    fake_anthropic.set_responder(lambda request: demo_responder(request, delay=0.005))
    context = new_context(
        viewport={"width": 360, "height": 760},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        color_scheme="dark",
    )
    chat = ChatPage(context.new_page(), server).goto().open()
    chat.send("Show pending invitations")
    expect(chat.replies.last.locator("table")).to_contain_text("gina@acme.test")
    chat.wait_idle()
    assert _background(chat) == "rgb(22, 22, 27)"
    box = chat.sheet.bounding_box()
    assert box is not None and round(box["width"]) == 360
    chat.page.screenshot(path=_target(tmp_path, "screenshot-mobile-dark.png"))


def test_tool_call_screenshot_shows_the_spinner_while_the_tool_runs(
    chat: ChatPage, fake_anthropic: FakeAnthropic, tool_gate: ToolGate, tmp_path: Path
) -> None:
    fake_anthropic.set_responder(demo_responder)
    chat.open()
    chat.send("Who are the admins here?")
    tool = chat.replies.last.locator(".cb-tool")
    expect(tool.locator(".cb-spinner")).to_be_visible()
    expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    chat.page.screenshot(path=_target(tmp_path, "screenshot-tool-call.png"))
    tool_gate.release()
    expect(tool).to_have_attribute("data-status", "done")


def test_approval_screenshot_shows_a_change_waiting_for_the_users_decision(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    fake_anthropic.set_responder(lambda request: demo_responder(request, delay=0.005))
    chat = ChatPage(new_context(color_scheme="light").new_page(), server).goto().open()
    chat.send("Who are the admins here?")
    expect(chat.replies.last.locator("table")).to_contain_text("Alice Anders")
    chat.wait_idle()
    fake_anthropic.set_responder(None)
    fake_anthropic.enqueue(
        Reply.tool_use(
            "member_remove",
            {"email": "bob@acme.test"},
            text_before="Bob Brown is a member of Acme Inc. Removing him takes away his access at once:",
            id="toolu_remove_bob",
        )
    )
    chat.send("Remove Bob from the team")
    card = chat.approvals
    expect(card).to_have_attribute("data-status", "awaiting")
    expect(card.locator(".cb-approval-summary")).to_have_text(
        "Remove Bob Brown (bob@acme.test) from Acme Inc"
    )
    expect(card.get_by_role("button", name="Approve")).to_be_enabled()
    chat.wait_idle()
    assert _background(chat) == "rgb(255, 255, 255)"
    chat.page.screenshot(path=_target(tmp_path, "screenshot-approval.png"))


def test_activity_screenshot_shows_the_usage_and_the_audit_trail_on_the_team_page(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The week before: a question a day from Alice or Bob, each answered at its own length, charged to
    # its day by the ledger's clock.
    ledger = server.services.ledger
    now = datetime.datetime.now(datetime.UTC)
    for days_ago in range(7, 0, -1):
        monkeypatch.setattr(
            ledger, "_clock", lambda days_ago=days_ago: now - datetime.timedelta(days=days_ago)
        )
        fake_anthropic.enqueue(Reply.text("Here is what I found. " * (40 * (days_ago % 4 + 1))))
        run_async(
            server.message("What changed this week?", user="user_bob" if days_ago % 3 == 0 else "user_alice")
        )
    monkeypatch.undo()
    # Then five requests of Alice's today, as the chat sheet would send them: a lookup, a removal and its
    # approval, an invitation and its refusal.
    fake_anthropic.enqueue(
        Reply.tool_use("member_list", {"role": "admin"}),
        Reply.text("Alice Anders is the admin."),
        Reply.tool_use("member_remove", {"email": "bob@acme.test"}, id="toolu_remove_bob"),
        Reply.text("Bob Brown is no longer a member."),
        Reply.tool_use(
            "invitation_create", {"email": "hal@acme.test", "role": "admin"}, id="toolu_invite_hal"
        ),
        Reply.text("All right, I did not invite Hal."),
    )
    run_async(server.message("Who are the admins here?"))
    removal = run_async(server.message("Remove Bob from the team"))
    run_async(
        server.message(
            json_body={"conversation_id": removal.conversation_id, "approvals": {"toolu_remove_bob": True}}
        )
    )
    invitation = run_async(server.message("Invite hal@acme.test as an admin"))
    run_async(
        server.message(
            json_body={
                "conversation_id": invitation.conversation_id,
                "approvals": {"toolu_invite_hal": False},
            }
        )
    )
    context = new_context(color_scheme="light", viewport={"width": 1280, "height": HEIGHT})
    chat = ChatPage(context.new_page(), server).goto()
    rows = chat.page.locator("chatbot-activity .cb-activity-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.locator("td:nth-child(3)")).to_have_text(
        ["invitation_create", "member_remove", "member_list"]
    )
    expect(rows.locator("td:nth-child(4)")).to_have_text(["Declined", "Succeeded", "Succeeded"])
    expect(rows.locator("td:nth-child(5)")).to_have_text(["No", "Yes", "Not asked"])
    # The approved removal opened: what was asked for, and what it did.
    removal_row = rows.nth(1)
    removal_row.get_by_text("Show").click()
    expect(removal_row.locator(".cb-tool-pre").nth(1)).to_contain_text("bob@acme.test")
    # The table fits its box (no sideways scrolling), and the whole page fits the picture.
    overflow = chat.page.evaluate(
        "() => { const s = document.querySelector('chatbot-activity').shadowRoot.querySelector('.cb-activity-scroll');"
        " return s.scrollWidth - s.clientWidth; }"
    )
    assert overflow <= 0, overflow
    # The usage above it: a bar for each of the eight days, and the two people, Alice first; Bob, removed
    # today, is no longer a member to take a name from, so his usage shows under his id.
    usage = chat.page.get_by_role("region", name="Usage", exact=True)
    expect(usage.get_by_role("img", name="Tokens per day")).to_be_visible()
    expect(usage.locator("figcaption")).to_contain_text("in 12 requests")
    expect(usage.locator(".cb-report-bar:not([data-tokens='0'])")).to_have_count(8)
    expect(usage.get_by_role("table").locator("tbody th")).to_have_text(["Alice Anders", "user_bob"])
    height = chat.page.evaluate("() => document.documentElement.scrollHeight")
    assert height <= HEIGHT, height
    chat.page.screenshot(path=_target(tmp_path, "screenshot-activity.png"))

"""The Conversations view of the chat sheet, in Chromium against the real app and the fake Anthropic API:
the user's chats as the server keeps them, newest first and a page at a time; open, rename, delete (after a
confirmation), New chat; and a reload or a new tab reopens a conversation from the server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import ChatPage, run_async
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall

pytestmark = pytest.mark.browser


def _start_conversation(server: LiveServer, fake_anthropic: FakeAnthropic, text: str, answer: str) -> str:
    """A conversation of Alice's, created over HTTP as another client of hers would; returns its id."""
    fake_anthropic.enqueue(Reply.text(answer))
    stream = run_async(server.message(json_body={"message": text}))
    assert stream.last["type"] == "done", stream.events
    return stream.conversation_id


def _server_conversation(server: LiveServer, conversation_id: str) -> httpx.Response:
    async def get() -> httpx.Response:
        async with server.client() as client:
            return await client.get(f"/api/chatbot/conversations/{conversation_id}", headers=server.auth())

    return run_async(get())


def _titles(chat: ChatPage) -> Any:
    return chat.page.locator("chatbot-sheet .cb-conv .cb-conv-title")


def test_the_conversations_view_lists_chats_newest_first_and_opens_renames_and_deletes_them(
    server: LiveServer, chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    oldest = _start_conversation(server, fake_anthropic, "Oldest chat", "Answer to the oldest.")
    middle = _start_conversation(server, fake_anthropic, "Middle chat", "Answer to the middle one.")
    chat.reload().open()
    # Without a bookmark in this tab, the sheet opens the most recently updated conversation.
    expect(chat.sheet.get_by_text("Answer to the middle one.")).to_be_visible()
    assert chat.conversation_id() == middle

    # New chat starts a new conversation, created on the server by its first message.
    chat.sheet.get_by_role("button", name="New chat").click()
    expect(chat.replies).to_have_count(0)
    expect(chat.sheet.get_by_text("Hi Alice, how can I help?")).to_be_visible()
    fake_anthropic.enqueue(Reply.text("Answer to the newest."))
    chat.send("Newest chat")
    expect(chat.replies.last).to_contain_text("Answer to the newest.")
    chat.wait_idle()
    newest = chat.conversation_id()
    assert newest not in (None, oldest, middle)
    assert "conversation_id" not in chat.posts[-1]

    # The list: newest first, the one on screen marked as current.
    toggle = chat.sheet.get_by_role("button", name="Conversations", exact=True)
    toggle.click()
    view = chat.page.get_by_role("region", name="Conversations", exact=True)
    expect(view).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(view.get_by_role("heading", name="Conversations")).to_be_focused()
    expect(_titles(chat)).to_have_text(["Newest chat", "Middle chat", "Oldest chat"])
    expect(view.locator("[aria-current='true']")).to_contain_text("Newest chat")
    expect(chat.textbox).to_be_hidden()
    # Esc in the view goes back to the chat (the sheet stays open); the button shows the list again.
    chat.page.keyboard.press("Escape")
    expect(view).to_be_hidden()
    expect(chat.sheet).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    expect(_titles(chat)).to_have_count(3)

    # Open one: back in the chat, showing that conversation as the server keeps it.
    view.get_by_role("button", name=re.compile(r"^Oldest chat")).click()
    expect(view).to_be_hidden()
    expect(chat.textbox).to_be_focused()
    expect(chat.page.locator("chatbot-sheet .cb-msg--user")).to_have_text(["Oldest chat"])
    expect(chat.replies).to_have_text(["Answer to the oldest."])
    assert chat.conversation_id() == oldest

    # Rename one in place (Enter saves); the server keeps the new title.
    toggle.click()
    view.get_by_role("button", name="Rename “Middle chat”").click()
    title = view.get_by_role("textbox", name="New title for “Middle chat”")
    expect(title).to_be_focused()
    expect(title).to_have_value("Middle chat")
    title.fill("Team questions")
    title.press("Enter")
    expect(_titles(chat)).to_have_text(["Newest chat", "Team questions", "Oldest chat"])
    expect(view.get_by_role("button", name="Rename “Team questions”")).to_be_focused()
    assert _server_conversation(server, middle).json()["title"] == "Team questions"

    # Delete asks first; Cancel keeps it.
    view.get_by_role("button", name="Delete “Newest chat”").click()
    confirm = view.get_by_role("group", name="Delete “Newest chat”")
    expect(confirm).to_contain_text("Delete “Newest chat”? This can't be undone.")
    confirm.get_by_role("button", name="Cancel").click()
    expect(_titles(chat)).to_have_text(["Newest chat", "Team questions", "Oldest chat"])
    assert _server_conversation(server, newest).status_code == 200
    view.get_by_role("button", name="Delete “Newest chat”").click()
    confirm.get_by_role("button", name="Delete", exact=True).click()
    expect(_titles(chat)).to_have_text(["Team questions", "Oldest chat"])
    assert _server_conversation(server, newest).status_code == 404

    # Deleting the conversation on screen leaves a new chat.
    view.get_by_role("button", name="Delete “Oldest chat”").click()
    view.get_by_role("group", name="Delete “Oldest chat”").get_by_role(
        "button", name="Delete", exact=True
    ).click()
    expect(_titles(chat)).to_have_text(["Team questions"])
    assert _server_conversation(server, oldest).status_code == 404
    view.get_by_role("button", name="Back to chat").click()
    expect(view).to_be_hidden()
    expect(chat.replies).to_have_count(0)
    assert chat.conversation_id() is None
    assert chat.errors == []


def test_after_a_reload_the_sheet_reopens_the_conversation_from_the_server(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("First **answer**."), Reply.text("Second answer."))
    chat.open()
    chat.send("First question")
    expect(chat.replies.last).to_contain_text("First answer.")
    chat.wait_idle()
    chat.send("Second question")
    expect(chat.replies.last).to_contain_text("Second answer.")
    chat.wait_idle()
    conversation_id = chat.conversation_id()
    # The tab keeps only which conversation it shows; the messages are the server's.
    stored = chat.page.evaluate("() => JSON.stringify(Object.entries(sessionStorage))")
    assert conversation_id in stored and "First question" not in stored
    with chat.page.expect_response(
        lambda r: r.url.endswith(f"/api/chatbot/conversations/{conversation_id}") and r.status == 200
    ):
        chat.reload()
    chat.open()
    expect(chat.page.locator("chatbot-sheet .cb-msg--user")).to_have_text(
        ["First question", "Second question"]
    )
    expect(chat.replies).to_have_text(["First answer.", "Second answer."])
    expect(chat.replies.first.locator("strong")).to_have_text("answer")
    assert chat.conversation_id() == conversation_id
    assert chat.errors == []


def test_the_conversations_view_loads_older_chats_a_page_at_a_time(
    server: LiveServer, new_context: Callable[..., BrowserContext], fake_anthropic: FakeAnthropic
) -> None:
    for n in range(22):
        _start_conversation(server, fake_anthropic, f"Question {n:02d}", "ok")
    everything = [f"Question {n:02d}" for n in range(21, -1, -1)]
    # Tall enough for the first page to fit: "Load more" asks for the next one.
    tall = ChatPage(new_context(viewport={"width": 1280, "height": 2400}).new_page(), server).goto().open()
    tall.sheet.get_by_role("button", name="Conversations", exact=True).click()
    view = tall.page.get_by_role("region", name="Conversations", exact=True)
    expect(_titles(tall)).to_have_text(everything[:20])
    view.get_by_role("button", name="Load more").click()
    expect(_titles(tall)).to_have_text(everything)
    expect(view.get_by_role("button", name="Load more")).to_be_hidden()
    # Scrolling to the end of a list that overflows loads the next page by itself.
    short = ChatPage(new_context().new_page(), server).goto().open()
    short.sheet.get_by_role("button", name="Conversations", exact=True).click()
    expect(_titles(short)).to_have_count(20)
    short.page.evaluate(
        """() => {
          const scroller = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-conv-scroller');
          scroller.scrollTop = scroller.scrollHeight;
        }"""
    )
    expect(_titles(short)).to_have_text(everything)
    assert tall.errors == [] and short.errors == []


def test_after_a_reload_each_tool_call_keeps_the_outcome_it_had(
    server: LiveServer, new_context: Callable[..., BrowserContext], fake_anthropic: FakeAnthropic
) -> None:
    # Bob (a member) may list members but not remove them: the server refuses that call.
    fake_anthropic.enqueue(
        Reply.tool_uses(
            ToolCall("member_list", {}, id="toolu_list"),
            ToolCall("member_remove", {"email": "erin@acme.test"}, id="toolu_remove"),
        ),
        Reply.text("I listed the members but could not remove Erin."),
    )
    chat = ChatPage(new_context().new_page(), server).goto(user="user_bob").open()
    chat.send("List the members and remove Erin")
    expect(chat.replies.last).to_contain_text("could not remove Erin")
    chat.wait_idle()
    tools = chat.page.locator("chatbot-sheet .cb-tool")
    expect(tools).to_have_count(2)
    live = [tools.nth(i).get_attribute("data-status") for i in range(2)]
    assert live == ["done", "error"]
    chat.reload().open()
    expect(chat.replies.last).to_contain_text("could not remove Erin")
    expect(tools).to_have_count(2)
    expect(tools.nth(0)).to_have_attribute("data-status", "done")
    expect(tools.nth(1)).to_have_attribute("data-status", "error")
    expect(tools.nth(1)).to_contain_text("Removing a member failed")
    assert chat.errors == []


def test_each_user_sees_only_their_own_conversations_and_switching_back_reopens_the_one_they_had(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("For Alice."), Reply.text("For Carol."))
    chat.open()
    chat.send("Alice asks")
    expect(chat.replies.last).to_contain_text("For Alice.")
    chat.wait_idle()
    alices = chat.conversation_id()
    chat.page.keyboard.press("Escape")
    chat.page.get_by_label("Demo user").select_option("user_carol")
    chat.open()
    expect(chat.sheet.get_by_text("Hi Carol, how can I help?")).to_be_visible()
    chat.sheet.get_by_role("button", name="Conversations", exact=True).click()
    view = chat.page.get_by_role("region", name="Conversations", exact=True)
    expect(view.get_by_text("No conversations yet.")).to_be_visible()
    view.get_by_role("button", name="Back to chat").click()
    chat.send("Carol asks")
    expect(chat.replies.last).to_contain_text("For Carol.")
    chat.wait_idle()
    chat.page.keyboard.press("Escape")
    chat.page.get_by_label("Demo user").select_option("user_alice")
    chat.open()
    expect(chat.replies).to_have_text(["For Alice."])
    assert chat.conversation_id() == alices
    chat.sheet.get_by_role("button", name="Conversations", exact=True).click()
    expect(_titles(chat)).to_have_text(["Alice asks"])
    assert chat.errors == []

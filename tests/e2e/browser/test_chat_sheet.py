"""The chat sheet in a real browser (Debian's Chromium, headless) against the real app and the fake
Anthropic API: streaming, Markdown, tool calls, Stop, the error states, safety, persistence, mobile."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import ChatPage, ToolGate
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply, demo_responder
from tests.fakes.tcp_proxy import SocketProxy

pytestmark = pytest.mark.browser

LONG_ANSWER = " ".join(f"word{i}" for i in range(60)) + " THE-END"


def test_sheet_opens_as_a_dialog_with_focus_in_the_message_box_and_esc_returns_focus(chat: ChatPage) -> None:
    launcher = chat.page.get_by_role("button", name="Open chat")
    expect(launcher).to_have_attribute("aria-expanded", "false")
    chat.open()
    expect(chat.sheet).to_have_accessible_name("Orbit Assistant")
    expect(chat.textbox).to_be_focused()
    expect(chat.sheet.get_by_text(re.compile(r"^0 / 50,000 tokens$"))).to_be_visible()
    expect(chat.sheet.get_by_text("Hi Alice, how can I help?")).to_be_visible()
    chat.page.keyboard.press("Escape")
    expect(chat.sheet).to_be_hidden()
    expect(launcher).to_be_focused()
    chat.open()
    chat.sheet.get_by_role("button", name="Close chat").click()
    expect(chat.sheet).to_be_hidden()
    assert chat.errors == []


def test_reply_text_streams_in_progressively(chat: ChatPage, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Reply.text(LONG_ANSWER, chunks=20, delay=0.05))
    chat.open()
    chat.watch()
    chat.send("Tell me something long")
    expect(chat.page.get_by_role("button", name="Stop")).to_be_visible()
    expect(chat.replies.last).to_contain_text("THE-END")
    chat.wait_idle()
    texts = [s["text"] for s in chat.snapshots() if s["status"] == "streaming" and s["text"]]
    final = chat.replies.last.locator(".cb-parts").text_content() or ""
    partial = [t for t in dict.fromkeys(texts) if "THE-END" not in t]
    assert len(partial) >= 5, f"expected several intermediate states, saw {len(partial)}"
    lengths = [len(t) for t in partial]
    assert lengths == sorted(lengths), "text only ever grows while streaming"
    assert all(final.startswith(t.strip()) for t in partial)
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()


MARKDOWN = (
    "Here are the members:\n\n"
    "| Name | Role |\n|---|---|\n| Alice Anders | admin |\n| Bob Brown | member |\n\n"
    "And some code:\n\n```python\nfor member in members:\n    print(member.name)\n```\n\nDone."
)


def test_gfm_table_and_code_block_render_as_table_and_pre_code_even_while_streaming(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text(MARKDOWN, chunks=40, delay=0.03))
    chat.open()
    chat.watch()
    chat.send("Show me")
    reply = chat.replies.last
    expect(reply.get_by_text("Done.")).to_be_visible()
    expect(reply.locator("table th")).to_have_text(["Name", "Role"])
    expect(reply.locator("table tbody tr")).to_have_count(2)
    expect(reply.locator("pre > code.language-python")).to_contain_text("print(member.name)")
    snapshots = chat.snapshots()
    # While the fence was open (no closing ``` yet), the code already showed as a code block.
    open_fence = [s for s in snapshots if "```python" in s["raw"] and s["raw"].count("```") == 1]
    assert open_fence, "never observed the code block mid-stream"
    assert all(s["pre"] for s in open_fence)
    # Once the header row had arrived, it showed as a table, not as pipes in a paragraph.
    header_seen = [s for s in snapshots if "| Name | Role |\n" in s["raw"]]
    assert header_seen and all(s["table"] for s in header_seen)
    assert not any("```" in s["text"] or "|---" in s["text"] for s in snapshots)


def test_tool_call_shows_a_spinner_while_running_then_success_with_input_and_result(
    chat: ChatPage, fake_anthropic: FakeAnthropic, tool_gate: ToolGate
) -> None:
    fake_anthropic.set_responder(demo_responder)
    chat.open()
    chat.send("Who are the admins here?")
    tool = chat.replies.last.locator(".cb-tool")
    expect(tool).to_contain_text("Listing members")
    expect(tool.locator(".cb-spinner")).to_be_visible()
    expect(tool).to_have_attribute("data-status", "running")
    tool_gate.release()
    expect(tool).to_have_attribute("data-status", "done")
    expect(tool).to_contain_text("Listed members")
    expect(tool.locator(".cb-spinner")).to_have_count(0)
    tool.locator("summary").click()
    expect(tool.locator(".cb-tool-pre").first).to_contain_text('"role": "admin"')
    expect(tool.locator(".cb-tool-pre").nth(1)).to_contain_text("alice@acme.test")
    expect(chat.replies.last.locator("table")).to_contain_text("Alice Anders")


def test_stop_ends_the_stream_keeps_the_partial_answer_and_the_next_message_works(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text(LONG_ANSWER, chunks=60, delay=0.1), Reply.text("Second answer."))
    chat.open()
    chat.send("Tell me something long")
    reply = chat.replies.last
    expect(reply).to_contain_text("word3")
    chat.page.get_by_role("button", name="Stop").click()
    expect(reply.get_by_text("Stopped")).to_be_visible()
    expect(chat.page.get_by_role("button", name="Send")).to_be_visible()
    partial = reply.locator(".cb-parts").text_content() or ""
    assert "word0" in partial
    assert "THE-END" not in partial
    # The upstream stream was closed, not read to its end.
    fake_anthropic.wait_for_disconnects(1, timeout=10)
    chat.send("And now?")
    expect(chat.replies.last).to_contain_text("Second answer.")
    expect(chat.replies).to_have_count(2)
    expect(chat.replies.first).to_contain_text("word0")


def test_a_sheet_removed_mid_answer_cancels_its_reply_and_works_again_when_put_back(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.text(LONG_ANSWER, chunks=60, delay=0.1),
        Reply.text("Back in the page, and streaming again.", chunks=8, delay=0.05),
    )
    chat.open()
    chat.send("Tell me something long")
    expect(chat.replies.last).to_contain_text("word3")
    with (
        chat.page.expect_event("requestfailed", lambda r: r.url.endswith("/api/chatbot/message")) as dropped,
        chat.page.expect_response(lambda r: r.url.endswith("/api/chatbot/cancel")) as cancel,
    ):
        chat.page.evaluate("() => (window.__sheet = document.querySelector('chatbot-sheet')).remove()")
    # The stream was dropped and the server told to cancel, as Stop does.
    assert dropped.value.failure == "net::ERR_ABORTED"
    assert cancel.value.status == 200
    assert isinstance(cancel.value.json()["cancelled"], bool)
    fake_anthropic.wait_for_disconnects(1, timeout=10)
    chat.page.wait_for_function("() => window.__sheet.store.getState().messages.at(-1).status === 'stopped'")
    chat.page.evaluate("() => document.body.append(window.__sheet)")
    # Put back, it shows the stopped answer and takes the next message (the server's lock is free again),
    # drawing the reply as it streams.
    expect(chat.replies.first.get_by_text("Stopped")).to_be_visible()
    chat.watch()
    chat.send("And now?")
    expect(chat.replies.last).to_contain_text("streaming again.")
    chat.wait_idle()
    expect(chat.replies).to_have_count(2)
    expect(chat.sheet.get_by_role("alert")).to_have_count(0)
    assert any(s["status"] == "streaming" and "Back" in s["text"] for s in chat.snapshots())
    assert chat.errors == []


def test_a_reply_running_in_another_tab_gets_a_clear_409_message(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    tool_gate: ToolGate,
) -> None:
    fake_anthropic.set_responder(demo_responder)
    context = new_context()
    # Both tabs are open before the first one asks: a tab opened later would reopen the conversation the
    # server keeps and follow its answer live (see test_sheet_reattach.py), instead of asking anew.
    first = ChatPage(context.new_page(), server).goto().open()
    second = ChatPage(context.new_page(), server).goto().open()
    first.send("Who are the admins here?")
    assert tool_gate.entered.wait(10)
    second.send("Show pending invitations")
    alert = second.replies.last.get_by_role("alert")
    expect(alert).to_contain_text("A reply is already running")
    expect(alert).to_contain_text("another tab")
    expect(alert.get_by_role("button", name="Retry")).to_be_visible()
    tool_gate.release()
    first.wait_idle()
    alert.get_by_role("button", name="Retry").click()
    expect(second.replies.last).to_contain_text("invitation_list")
    expect(second.replies).to_have_count(1)


def test_daily_limit_says_which_limit_and_when_it_resets_in_local_time(
    start_server: Callable[..., LiveServer],
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
) -> None:
    # The first answer runs to the max_tokens the limit leaves it, which spends the day.
    server = start_server(chatbot_daily_token_limit_user=8000)
    fake_anthropic.enqueue(Reply.text("word " * 4000))
    context = new_context(locale="en-GB", timezone_id="Asia/Tokyo")
    chat = ChatPage(context.new_page(), server).goto().open()
    chat.send("Hello")
    expect(chat.replies.last).to_contain_text("word")
    chat.wait_idle()
    chat.send("Again")
    alert = chat.replies.last.get_by_role("alert")
    expect(alert).to_contain_text("Daily limit reached")
    expect(alert).to_contain_text("your daily limit of 8,000 tokens")
    # Midnight UTC is 09:00 in Tokyo.
    expect(alert).to_contain_text(re.compile(r"resets (tomorrow )?at 09:00 \(your time\)"))
    expect(alert.get_by_role("button", name="Retry")).to_have_count(0)


def test_disabled_assistant_says_it_is_off_and_the_button_can_hide(
    start_server: Callable[..., LiveServer], new_context: Callable[..., BrowserContext]
) -> None:
    server = start_server(anthropic_api_key=None)
    chat = ChatPage(new_context().new_page(), server).goto().open()
    expect(chat.sheet.get_by_text("The assistant is off")).to_be_visible()
    expect(chat.textbox).to_be_disabled()
    chat.sheet.get_by_role("button", name="Close chat").click()
    chat.page.evaluate("() => document.querySelector('chatbot-sheet').setAttribute('hide-when-disabled', '')")
    expect(chat.page.get_by_role("button", name="Open chat")).to_be_hidden()


def test_error_event_mid_stream_keeps_the_partial_text_and_offers_retry(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.stream_error(after_events=6, reply=Reply.text(LONG_ANSWER, chunks=30)),
        Reply.text("Recovered answer."),
    )
    chat.open()
    chat.send("Try this")
    reply = chat.replies.last
    alert = reply.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(reply).to_contain_text("word0")
    alert.get_by_role("button", name="Retry").click()
    expect(chat.replies.last).to_contain_text("Recovered answer.")
    expect(chat.replies).to_have_count(1)


def test_lost_connection_mid_stream_keeps_the_partial_text_and_the_sheet_reattaches_to_finish_it(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    proxy: SocketProxy,
) -> None:
    fake_anthropic.enqueue(Reply.text(LONG_ANSWER, chunks=60, delay=0.1), Reply.text("Back again."))
    chat = ChatPage(new_context().new_page(), server).goto(base_url=proxy.url).open()
    chat.send("Tell me something long")
    reply = chat.replies.last
    expect(reply).to_contain_text("word2")
    proxy.drop_all()
    # The server runs the answer on; the sheet keeps what arrived, re-attaches and shows the rest.
    expect(reply).to_contain_text("THE-END", timeout=15_000)
    chat.wait_idle()
    expect(reply).to_have_attribute("data-status", "done")
    expect(chat.sheet.get_by_role("alert")).to_have_count(0)
    assert (reply.locator(".cb-parts").text_content() or "").strip() == LONG_ANSWER
    assert len(fake_anthropic.message_requests) == 1, "the question was not sent again"
    chat.send("And now?")
    expect(chat.replies.last).to_contain_text("Back again.")
    expect(chat.replies).to_have_count(2)


HOSTILE = """Sneaky content below.

<script>window.__pwned = 'script'</script>
<img src="x" onerror="window.__pwned = 'img'">
<svg onload="window.__pwned = 'svg'"></svg>
<iframe src="javascript:window.parent.__pwned = 'iframe'"></iframe>
<a href="javascript:window.__pwned = 'raw-link'">raw link</a>

[markdown link](javascript:window.__pwned='md-link') and [data link](data:text/html,<script>alert(1)</script>)
and [a real site](https://example.com/docs).

![tracking pixel](TRACKER)

| col |
|---|
| <img src=x onerror="window.__pwned='cell'"> |

`<b>code stays text</b>`
"""


def test_hostile_markdown_and_html_neither_run_script_nor_load_remote_content(
    chat: ChatPage, fake_anthropic: FakeAnthropic, server: LiveServer
) -> None:
    tracker = f"{server.base_url}/static/tracker.png"
    fake_anthropic.enqueue(
        Reply.tool_use("member_get", {"email": "<img src=x onerror=\"window.__pwned='tool'\">"}),
        Reply.text(HOSTILE.replace("TRACKER", tracker), chunks=25),
    )
    requested: list[str] = []
    chat.page.on("request", lambda request: requested.append(request.url))
    chat.open()
    chat.send("Say something dangerous")
    reply = chat.replies.last
    expect(reply.get_by_text("code stays text", exact=False)).to_be_visible()
    chat.wait_idle()
    shadow: dict[str, Any] = chat.page.evaluate(
        """() => {
          const root = document.querySelector('chatbot-sheet').shadowRoot;
          const links = [...root.querySelectorAll('.cb-md a')];
          return {
            pwned: window.__pwned ?? null,
            dangerous: root.querySelectorAll('.cb-msg script, .cb-msg img, .cb-msg svg:not(.cb-icon), .cb-msg iframe, .cb-msg [onerror], .cb-msg [onload]').length,
            hrefs: links.map((a) => a.getAttribute('href')),
            rels: links.filter((a) => a.hasAttribute('href')).map((a) => [a.target, a.rel]),
          };
        }"""
    )
    assert shadow["pwned"] is None
    assert shadow["dangerous"] == 0
    hrefs = [h for h in shadow["hrefs"] if h is not None]
    assert "https://example.com/docs" in hrefs
    assert tracker in hrefs  # the image became a link the user may choose to follow
    assert not any(h.lower().startswith(("javascript:", "data:")) for h in hrefs)
    assert all(
        target == "_blank" and {"noopener", "noreferrer"} <= set(rel.split())
        for target, rel in shadow["rels"]
    )
    assert not any("tracker.png" in url for url in requested), "an image was loaded"
    # Raw HTML shows as text, so the user sees what the model wrote.
    expect(reply).to_contain_text("<script>window.__pwned = 'script'</script>")
    # Tool input (model output) and results are plain text too.
    expect(reply.locator(".cb-tool-pre").first).to_contain_text("<img src=x onerror=")
    assert chat.errors == []


def test_reload_keeps_the_conversation_and_new_chat_clears_it(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("Remember **me**."), Reply.text("Second reply."))
    chat.open()
    chat.send("First question")
    expect(chat.replies.last).to_contain_text("Remember me.")
    chat.wait_idle()
    chat.reload()
    chat.open()
    expect(chat.sheet.get_by_text("First question")).to_be_visible()
    expect(chat.replies.last.locator("strong")).to_have_text("me")
    # The conversation lives on the server: the next message names it and carries no history, and the
    # model still reads the first turn (rebuilt by the server).
    with chat.page.expect_request(lambda r: r.url.endswith("/api/chatbot/message")) as sent:
        chat.send("Second question")
    expect(chat.replies.last).to_contain_text("Second reply.")
    request_body = sent.value.post_data_json
    assert isinstance(request_body, dict)
    assert set(request_body) == {"message", "conversation_id"}, request_body
    assert request_body["message"] == "Second question"
    body = fake_anthropic.message_requests[-1].body
    assert body is not None
    history = body["messages"]
    assert any("First question" in str(m["content"]) for m in history)
    assert any("Remember **me**." in str(m["content"]) for m in history)
    chat.sheet.get_by_role("button", name="New chat").click()
    expect(chat.replies).to_have_count(0)
    chat.reload()
    chat.open()
    expect(chat.replies).to_have_count(0)


def test_each_demo_user_has_their_own_conversation(chat: ChatPage, fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.enqueue(Reply.text("For Alice."))
    chat.open()
    chat.send("Alice asks")
    expect(chat.replies.last).to_contain_text("For Alice.")
    chat.wait_idle()
    chat.page.keyboard.press("Escape")
    chat.page.get_by_label("Demo user").select_option("user_carol")
    chat.open()
    expect(chat.sheet.get_by_text("Hi Carol, how can I help?")).to_be_visible()
    expect(chat.replies).to_have_count(0)


def test_mobile_viewport_gets_a_full_width_sheet_that_works(
    server: LiveServer, new_context: Callable[..., BrowserContext], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.text("| a | b |\n|---|---|\n| " + "long-cell-content " * 6 + "| x |"))
    context = new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    chat = ChatPage(context.new_page(), server).goto().open()
    box = chat.sheet.bounding_box()
    assert box is not None and box["x"] == 0 and box["width"] == 360
    chat.send("Wide table please")
    expect(chat.replies.last.locator("table")).to_be_visible()
    chat.wait_idle()
    # Nothing pushes the page sideways: wide content scrolls inside its own box.
    assert chat.page.evaluate("() => document.documentElement.scrollWidth") <= 360
    sheet_overflow = chat.page.evaluate(
        "() => { const s = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-messages');"
        " return s.scrollWidth - s.clientWidth; }"
    )
    assert sheet_overflow <= 0


def test_reduced_motion_opens_the_sheet_without_sliding(
    server: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    chat = ChatPage(new_context(reduced_motion="reduce").new_page(), server).goto()
    chat.page.get_by_role("button", name="Open chat").click()
    duration = chat.page.evaluate(
        "() => getComputedStyle(document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-sheet'))"
        ".transitionDuration"
    )
    assert set(duration.replace(" ", "").split(",")) == {"0s"}


def _distance_to_end(chat: ChatPage) -> float:
    distance: float = chat.page.evaluate(
        "() => { const s = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-messages');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight; }"
    )
    return distance


def test_list_follows_new_text_stays_put_when_scrolled_up_and_offers_jump_to_latest(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    paragraphs = "\n\n".join(f"Paragraph {i} of a long answer." for i in range(80))
    fake_anthropic.enqueue(Reply.text(paragraphs, chunks=160, delay=0.03))
    chat.open()
    chat.send("Write a lot")
    reply = chat.replies.last
    expect(reply).to_contain_text("Paragraph 25 ")
    assert _distance_to_end(chat) < 32, "follows the text while the reader is at the bottom"
    chat.page.evaluate(
        "() => { document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-messages').scrollTop = 0; }"
    )
    jump = chat.page.get_by_role("button", name="Jump to latest")
    expect(jump).to_be_visible()
    expect(reply).to_contain_text("Paragraph 40 ")
    top = chat.page.evaluate(
        "() => document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-messages').scrollTop"
    )
    assert top == 0, "a reader who scrolled up is left where they are"
    jump.click()
    expect(jump).to_be_hidden()
    chat.page.wait_for_function(
        "() => { const s = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-messages');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight < 32; }"
    )
    expect(reply).to_contain_text("Paragraph 79 ")
    chat.wait_idle()
    assert _distance_to_end(chat) < 32


def test_streamed_text_is_announced_politely_in_whole_sentences(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.text("First sentence here. Second one follows. And a last bit", chunks=12, delay=0.03)
    )
    chat.open()
    chat.send("Talk to me")
    announcer = chat.page.locator("chatbot-sheet [aria-live='polite']")
    expect(announcer).to_contain_text("First sentence here.")
    chat.wait_idle()
    expect(announcer.locator("p")).to_have_text(
        ["First sentence here.", "Second one follows.", "And a last bit"]
    )


def test_an_expired_token_is_replaced_once_and_the_message_goes_through(
    chat: ChatPage, fake_anthropic: FakeAnthropic
) -> None:
    expired = chat.server.token(exp=1)
    # A host whose cached token has expired: it only fetches a new one when the sheet asks for it afresh.
    chat.page.evaluate(
        """(expired) => {
          const sheet = document.querySelector('chatbot-sheet');
          const real = sheet.getToken;
          window.__asked = [];
          sheet.getToken = async (options) => {
            window.__asked.push(Boolean(options && options.forceRefresh));
            return options && options.forceRefresh ? real(options) : expired;
          };
        }""",
        expired,
    )
    fake_anthropic.enqueue(Reply.text("Signed in again, all good."))
    chat.open()
    chat.send("Hello")
    expect(chat.replies.last).to_contain_text("Signed in again, all good.")
    chat.wait_idle()
    asked_afresh = chat.page.evaluate("() => window.__asked")
    assert any(asked_afresh), f"the sheet never asked for a fresh token: {asked_afresh}"
    expect(chat.sheet).not_to_contain_text("sign in again")

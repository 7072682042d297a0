"""The README's screenshots, taken from the real sheet in the states they show. Each test checks the
state it photographs; with UPDATE_SCREENSHOTS=1 the images are written to docs/ (else to a temp dir)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import DOCS, ChatPage, ToolGate
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, demo_responder

pytestmark = pytest.mark.browser


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

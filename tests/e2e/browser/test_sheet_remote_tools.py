"""The host application's own tools in the chat sheet, in Chromium: a write of the example app (its MCP
server, `auth: forward`) waits on an approval card naming the tool, its server and its input; approved, it
runs as the signed-in user."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from examples.projects.store import Store
from tests.e2e.browser.conftest import ChatPage
from tests.e2e.conftest import SECRET, LiveServer, ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.reference.servers import example_app

pytestmark = pytest.mark.browser


@pytest.fixture
def projects(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    with example_app(SECRET, tmp_path / "projects.sqlite") as found:
        yield found


@pytest.fixture
def server(start_server: ServerFactory, projects: tuple[str, Store]) -> LiveServer:
    return start_server(chatbot_mcp_servers=[{"name": "projects", "url": projects[0], "auth": "forward"}])


def test_a_remote_write_waits_on_a_card_and_runs_as_the_user_once_approved(
    server: LiveServer,
    new_context: Callable[..., BrowserContext],
    fake_anthropic: FakeAnthropic,
    projects: tuple[str, Store],
) -> None:
    store = projects[1]
    fake_anthropic.enqueue(
        Reply.tool_use(
            "projects_task_create",
            {"project": "Website relaunch", "title": "Write the docs"},
            text_before="I'll add it.",
            id="toolu_task",
        ),
        Reply.text("Added **Write the docs**.", chunks=3),
    )
    chat = ChatPage(new_context().new_page(), server).goto(user="user_bob")
    chat.open()
    chat.send("Add a task Write the docs to Website relaunch")
    card = chat.approvals
    expect(card).to_have_count(1)
    summary = card.locator(".cb-approval-summary")
    for line in ("Add a task (projects)", "project: Website relaunch", "title: Write the docs"):
        expect(summary).to_contain_text(line)
    chat.wait_idle()
    assert "Write the docs" not in [t.title for t in store.list_tasks("org_acme")]

    card.get_by_role("button", name="Approve").click()
    expect(card).to_have_attribute("data-status", "done")
    expect(chat.replies.last.locator("strong")).to_have_text("Write the docs")
    [created] = [t for t in store.list_tasks("org_acme") if t.title == "Write the docs"]
    assert created.created_by == "user_bob", "the app saw the signed-in user's own token"
    assert chat.errors == []

"""Browser fixtures: Debian's Chromium driven by Playwright, the built chat sheet, and helpers that watch
the sheet's shadow DOM as a reply streams in."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, Request, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.conftest import LiveServer
from tests.fakes.tcp_proxy import SocketProxy

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
T = TypeVar("T")
WAIT_MS = 30_000
"""The bound of every browser wait: generous, since CI's two cores also run the other pytest worker (a
page that signs in and opens in 2-4 s here once took over 10 s there); a passing wait returns at once."""
FRONTEND = Path(__file__).resolve().parents[3] / "frontend"
DOCS = Path(__file__).resolve().parents[3] / "docs"

# Records, on every change in the sheet's shadow DOM, what the newest assistant reply looks like and
# the raw Markdown the store holds at that moment: tests read intermediate states, not just the end.
WATCH_JS = """
() => {
  const el = document.querySelector('chatbot-sheet');
  const root = el.shadowRoot;
  window.__snapshots = [];
  const record = () => {
    const replies = root.querySelectorAll('.cb-msg--assistant');
    const last = replies[replies.length - 1];
    if (!last) return;
    const message = el.store.getState().messages.at(-1);
    const raw = message && message.parts
      ? message.parts.filter((p) => p.kind === 'text').map((p) => p.text).join('') : '';
    window.__snapshots.push({
      status: last.dataset.status,
      text: last.querySelector('.cb-parts').textContent,
      raw,
      pre: !!last.querySelector('pre > code'),
      table: !!last.querySelector('table th'),
      spinner: !!last.querySelector('.cb-tool .cb-spinner'),
      tools: [...last.querySelectorAll('.cb-tool')].map((t) => t.dataset.status).join(','),
    });
  };
  new MutationObserver(record).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}
"""


def _build_frontend() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail("npm is needed to build the chat sheet (frontend/)")
    if not (FRONTEND / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True, capture_output=True)
    subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True, capture_output=True)


@pytest.fixture(scope="session")
def frontend_built() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does this)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    _build_frontend()


# Module scope, not session: Playwright's sync API keeps an event loop running in the main thread while it
# is open, which would break every asyncio test collected after the browser tests.
@pytest.fixture(scope="module")
def playwright_session(frontend_built: None) -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_session: Playwright) -> Iterator[Browser]:
    browser = playwright_session.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts (fresh storage each) with an English locale; closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        values: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}, "locale": "en-US", **options}
        context = browser.new_context(**values)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


SIGNED_IN = "() => document.querySelector('chatbot-sheet')?.getToken"
"""True once the demo page has signed in (it hands the sheet its token source)."""

expect.set_options(timeout=WAIT_MS)


class ChatPage:
    """The demo host page with the sheet, and the few moves a user makes in it."""

    def __init__(self, page: Page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        # The body of every `POST /api/chatbot/message` this page sent, reloads included.
        self.posts: list[dict[str, Any]] = []
        self.console: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.on("request", self._record_post)

    def _record_post(self, request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/api/chatbot/message"):
            body = request.post_data_json
            assert isinstance(body, dict), body
            self.posts.append(body)

    def goto(self, user: str = "user_alice", base_url: str | None = None) -> ChatPage:
        self.page.goto(f"{base_url or self.server.base_url}/?user={user}")
        self.until(SIGNED_IN, "the demo page signed in")
        return self

    def reload(self) -> ChatPage:
        """Reload the page (the tab's sessionStorage stays) and wait until the demo page has signed in."""
        self.page.reload()
        self.until(SIGNED_IN, "the demo page signed in again")
        return self

    def until(self, script: str, what: str, state: str = "() => null") -> None:
        """Wait until `script` is true; a timeout says what did not happen and what the page showed then
        (its errors, its console, and `state` evaluated in it)."""
        try:
            self.page.wait_for_function(script)
        except PlaywrightTimeout as timeout:
            seen = self.page.evaluate(state)
            raise AssertionError(
                f"not within {WAIT_MS} ms: {what}; state {seen}; errors {self.errors}; console {self.console[-20:]}"
            ) from timeout

    def open(self) -> ChatPage:
        self.page.get_by_role("button", name="Open chat").click()
        self.page.get_by_role("dialog").wait_for(state="visible")
        # Settled: the slide-in has ended at the right edge of the viewport.
        self.until(
            """() => {
              const sheet = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-sheet');
              return sheet.getAnimations().length === 0
                && Math.abs(sheet.getBoundingClientRect().right - window.innerWidth) < 0.5;
            }""",
            "the sheet slid in to the right edge",
            """() => {
              const sheet = document.querySelector('chatbot-sheet').shadowRoot.querySelector('.cb-sheet');
              return {animations: sheet.getAnimations().length, right: sheet.getBoundingClientRect().right,
                      innerWidth: window.innerWidth};
            }""",
        )
        return self

    @property
    def sheet(self) -> Any:
        return self.page.get_by_role("dialog")

    @property
    def textbox(self) -> Any:
        return self.page.get_by_role("textbox", name="Message")

    @property
    def replies(self) -> Any:
        return self.page.locator("chatbot-sheet .cb-msg--assistant")

    def watch(self) -> None:
        self.page.evaluate(WATCH_JS)

    def snapshots(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.page.evaluate("() => window.__snapshots")
        return result

    def send(self, text: str) -> None:
        self.textbox.fill(text)
        self.textbox.press("Enter")

    def wait_idle(self) -> None:
        """Until no reply streams (the Send button is back)."""
        self.page.get_by_role("button", name="Send").wait_for(state="visible")

    @property
    def approvals(self) -> Any:
        """The approval cards of every reply."""
        return self.page.locator("chatbot-sheet .cb-approval")

    def conversation_id(self) -> str | None:
        """The id of the conversation on screen (None for a new chat)."""
        value: str | None = self.page.evaluate(
            "() => document.querySelector('chatbot-sheet').store.getState().conversationId"
        )
        return value


@pytest.fixture
def chat(server: LiveServer, new_context: Callable[..., BrowserContext]) -> ChatPage:
    """The demo page, signed in as Alice (admin of Acme), on a default live server."""
    return ChatPage(new_context().new_page(), server).goto()


@pytest.fixture
def proxy(server: LiveServer) -> Iterator[SocketProxy]:
    """A proxy in front of the live server whose connections a test can all cut at once (`drop_all`)."""
    with SocketProxy(("127.0.0.1", server.port)) as dropping:
        yield dropping


class ToolGate:
    """Holds every tool call on the server until released, so a running tool call can be observed."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def tool_gate(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ToolGate]:
    gate = ToolGate()
    builtin = server.services.toolbox.builtin
    original = builtin.call

    async def gated_call(caller: Any, name: str, arguments: object) -> Any:
        gate.entered.set()
        # Abandoned on cancel, so Stop can still end the request while the gate is shut.
        await anyio.to_thread.run_sync(gate.released.wait, 30, abandon_on_cancel=True)
        return await original(caller, name, arguments)

    monkeypatch.setattr(builtin, "call", gated_call)
    yield gate
    gate.release()


def run_async(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to its end on an event loop of its own, in a worker thread (Playwright's sync API keeps
    a loop running in this thread)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=30)


def member_emails(server: LiveServer, org_id: str = "org_acme") -> set[str]:
    """The emails of the organization's members, read from the application data."""
    return {member.email for member in run_async(server.services.appdata.list_members(org_id))}


def pending_invitations(server: LiveServer, org_id: str = "org_acme") -> set[str]:
    """The emails of the organization's pending invitations, read from the application data."""
    return {invitation.email for invitation in run_async(server.services.appdata.list_invitations(org_id))}

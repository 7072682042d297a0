"""The usage report in <chatbot-activity>, in Chromium against the real app: the chart and the table show
what the requests made used, and the date range picker asks for other days."""

from __future__ import annotations

import datetime
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, expect

from tests.e2e.browser.conftest import ChatPage, run_async
from tests.e2e.conftest import LiveServer
from tests.e2e.sse import Stream
from tests.fakes.anthropic_api import FakeAnthropic, Reply

pytestmark = pytest.mark.browser


def tokens(stream: Stream) -> int:
    """What the quotas counted for a request: every token of every usage event."""
    kinds = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")
    return sum(event[kind] for event in stream.of("usage") for kind in kinds)


def test_an_admin_sees_todays_tokens_in_the_chart_and_people_by_tokens_and_can_pick_other_days(
    server: LiveServer, new_context: Callable[..., BrowserContext], fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_use("member_list", {}),
        Reply.text("Alice Anders and Bob Brown."),
        Reply.text("Hello Bob."),
    )
    alice = run_async(server.message("Who is here?", user="user_alice"))
    bob = run_async(server.message("Hi", user="user_bob"))
    assert alice.last["type"] == bob.last["type"] == "done"
    assert tokens(alice) > tokens(bob) > 0
    today = datetime.datetime.now(datetime.UTC).date()

    chat = ChatPage(new_context(viewport={"width": 1280, "height": 1000}).new_page(), server).goto()
    usage = chat.page.get_by_role("region", name="Usage", exact=True)
    expect(usage.get_by_role("heading", name="Usage")).to_be_visible()
    # The chart is an image whose name says what it shows; the bar of today is as tall as the chart.
    chart = usage.get_by_role("img", name="Tokens per day")
    expect(chart).to_be_visible()
    caption = usage.locator("figcaption")
    expect(caption).to_contain_text(f"{tokens(alice) + tokens(bob):,} tokens in 2 requests")
    bars = usage.locator(".cb-report-bar")
    expect(bars).to_have_count(30)
    today_bar = usage.locator(f'.cb-report-bar[data-date="{today.isoformat()}"]')
    expect(today_bar).to_have_attribute("data-tokens", str(tokens(alice) + tokens(bob)))
    # People by tokens, most first, with their requests and the tool calls that ran.
    table = usage.get_by_role("table", name="People by tokens")
    expect(table.get_by_role("columnheader")).to_have_text(["Person", "Tokens", "Requests", "Tool calls"])
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).get_by_role("rowheader")).to_have_text("Alice Anders")
    expect(rows.nth(0).get_by_role("cell")).to_have_text([f"{tokens(alice):,}", "1", "1"])
    expect(rows.nth(1).get_by_role("rowheader")).to_have_text("Bob Brown")
    expect(rows.nth(1).get_by_role("cell")).to_have_text([f"{tokens(bob):,}", "1", "0"])

    # Other days: a week before today had no use.
    week_ago = today - datetime.timedelta(days=7)
    usage.get_by_label("From", exact=True).fill((week_ago - datetime.timedelta(days=6)).isoformat())
    usage.get_by_label("To", exact=True).fill(week_ago.isoformat())
    usage.get_by_role("button", name="Show").click()
    expect(caption).to_contain_text("none used")
    expect(bars).to_have_count(7)
    expect(usage.get_by_text("Nobody used the assistant on these days.")).to_be_visible()

    # A reversed range is explained where the dates are, and nothing is asked of the server.
    asked: list[str] = []
    chat.page.on("request", lambda r: asked.append(r.url) if "/usage/report" in r.url else None)
    usage.get_by_label("From", exact=True).fill(today.isoformat())
    usage.get_by_label("To", exact=True).fill(week_ago.isoformat())
    usage.get_by_role("button", name="Show").click()
    expect(usage.get_by_role("alert")).to_have_text("The start date must be on or before the end date.")
    expect(usage.get_by_label("From", exact=True)).to_have_attribute("aria-invalid", "true")
    assert asked == []
    assert chat.errors == []


def test_on_a_phone_the_usage_wraps_instead_of_pushing_the_page_sideways(
    server: LiveServer, new_context: Callable[..., BrowserContext]
) -> None:
    context = new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    chat = ChatPage(context.new_page(), server).goto()
    usage = chat.page.get_by_role("region", name="Usage", exact=True)
    expect(usage.get_by_role("img", name="Tokens per day")).to_be_visible()
    assert chat.page.evaluate("() => document.documentElement.scrollWidth") <= 360
    box = usage.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 360

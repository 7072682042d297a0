"""Remote MCP servers through the mcp SDK's Streamable HTTP client: the token goes only where it is
forwarded, the permission meta filters and is checked again, approval follows the remote annotations, and
a server that is down, slow or answers garbage never fails anything: it is left out, or its call is an
error result of bounded size."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import jwt
import pytest
from chatbot.appdata import AppData
from chatbot.approval import needs_approval
from chatbot.permissions import Caller
from chatbot.settings import McpServerConfig
from chatbot.tools import Catalog, Toolbox
from chatbot.tools.remote import LEFT_OUT_SECONDS, RemoteServer
from mcp.types import Tool as McpTool

from tests.chatbot.tools.conftest import SECRET, Clock, server
from tests.fakes.mcp_server import LONG_NAME, FakeMcpServer

BOB = Caller("user_bob", "org_acme", "member", "Bob Brown", "bob@acme.test", "Acme Inc")
ALICE = Caller("user_alice", "org_acme", "admin", "Alice Anders", "alice@acme.test", "Acme Inc")
TOKEN = "the-callers-own-token"


@asynccontextmanager
async def toolbox(
    servers: Sequence[McpServerConfig], clock: Callable[[], float] = time.monotonic, **kwargs: Any
) -> AsyncIterator[Toolbox]:
    async with Toolbox(AppData(None, "unused"), builtin=False, servers=servers, clock=clock, **kwargs) as box:
        yield box


async def catalog(box: Toolbox, caller: Caller = BOB, token: str | None = TOKEN) -> Catalog:
    listing = await box.listing(caller.user_id, caller.org_id, token)
    return box.catalog(caller, token, listing)


def names(tools: Catalog) -> list[str]:
    return [d["name"] for d in tools.definitions()]


async def test_a_server_marked_none_never_receives_the_callers_token(fake_mcp: FakeMcpServer) -> None:
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        tools = await catalog(box)
        assert (await tools.call("fake_echo", {"text": "hi"})).content == "hi"
    assert fake_mcp.requests and fake_mcp.authorizations == [None] * len(fake_mcp.requests)


async def test_a_forward_server_gets_the_callers_own_token_on_every_request(fake_mcp: FakeMcpServer) -> None:
    async with toolbox([server("fake", fake_mcp.url, "forward")]) as box:
        tools = await catalog(box)
        assert (await tools.call("fake_echo", {"text": "hi"})).content == "hi"
    assert "tools/list" in fake_mcp.methods() and "tools/call" in fake_mcp.methods()
    assert fake_mcp.authorizations == [f"Bearer {TOKEN}"] * len(fake_mcp.requests)


async def test_tools_are_named_server_underscore_tool_made_safe_and_short(fake_mcp: FakeMcpServer) -> None:
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        offered = names(await catalog(box, ALICE))
    long = [name for name in offered if name.startswith("fake_xxx")]
    assert len(long) == 1 and len(long[0]) == 64 and long[0] != f"fake_{LONG_NAME}"[:64]
    assert sorted(set(offered) - set(long)) == [
        "fake_a_b",
        "fake_echo",
        "fake_erase",
        "fake_note_add",
        "fake_picture",
    ], "bad_permission (its permission meta is not resource:action) is left out"
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        assert long[0] in names(await catalog(box, ALICE)), "the same name every time"


async def test_the_permission_meta_filters_the_listing_and_is_checked_again_at_call_time(
    fake_mcp: FakeMcpServer,
) -> None:
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        bobs = await catalog(box, BOB)
        assert "fake_erase" not in names(bobs), "member:delete is not a member's"
        refused = await bobs.call("fake_erase", {"what": "everything"})
        assert refused.status == "not_permitted" and "member:delete" in refused.content
        assert "tools/call" not in fake_mcp.methods(), "a refused call never reaches the server"
        alices = await catalog(box, ALICE)
        assert "fake_erase" in names(alices)
        assert (await alices.call("fake_erase", {"what": "a typo"})).content == "erased a typo"


async def test_approval_follows_the_remote_tools_annotations_and_the_summary_names_the_server(
    fake_mcp: FakeMcpServer,
) -> None:
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        tools = await catalog(box, ALICE)
    waits = {name: needs_approval(tools.annotations(name), "writes") for name in names(tools)}
    assert [name for name, w in waits.items() if w] == ["fake_erase", "fake_note_add"]
    # Unannotated means possibly destructive (the MCP default), so it waits under `destructive` too.
    assert needs_approval(tools.annotations("fake_note_add"), "destructive")
    assert not needs_approval(tools.annotations("fake_echo"), "destructive")
    summary = await tools.summary("fake_note_add", {"text": "buy milk", "long": "y" * 500})
    assert summary.startswith("Add a note (fake)\ntext: buy milk\nlong: yyy")
    assert len(summary) < 200


async def test_images_and_resources_reach_the_model_as_a_short_description(fake_mcp: FakeMcpServer) -> None:
    async with toolbox([server("fake", fake_mcp.url)]) as box:
        result = await (await catalog(box)).call("fake_picture", {})
    assert not result.is_error
    assert result.content.splitlines() == [
        "Here it is.",
        "[image: image/png, 2.0 KB; not shown to the assistant]",
        "[resource <memo://1>, text/plain, 1300 characters of text; not shown to the assistant]",
    ]


@pytest.mark.parametrize(
    ("behaviour", "needle"),
    [
        ("garbage", "malformed answer"),
        ("huge", "larger than 2048 KB"),
        ("error", "answered with an error"),
        ("hang", "timed out after 2 s. Check whether the change was applied"),
    ],
)
async def test_a_call_answered_with_garbage_too_much_an_error_or_nothing_is_a_small_error_result(
    fake_mcp: FakeMcpServer, behaviour: Any, needle: str
) -> None:
    # The timeout bounds the hanging call; the others must answer within it even on a loaded CI machine.
    async with toolbox([server("fake", fake_mcp.url, timeout=2)], max_result_chars=300) as box:
        tools = await catalog(box)
        fake_mcp.misbehave("tools/call", behaviour)
        result = await tools.call("fake_note_add", {"text": "x"})
        assert result.is_error and needle in result.content and len(result.content) <= 300
        fake_mcp.misbehave("tools/call", None)
        assert (await tools.call("fake_echo", {"text": "still here"})).content == "still here"


async def test_a_long_result_is_cut_to_the_cap_and_says_so(fake_mcp: FakeMcpServer) -> None:
    async with toolbox([server("fake", fake_mcp.url)], max_result_chars=500) as box:
        result = await (await catalog(box)).call("fake_echo", {"text": "z" * 5000})
    assert result.is_error and len(result.content) <= 500 and "TRUNCATED" in result.content


async def test_a_server_that_cannot_be_listed_in_time_is_left_out_and_skipped_for_30_seconds(
    fake_mcp: FakeMcpServer, clock: Clock
) -> None:
    fake_mcp.misbehave("tools/list", "hang")
    async with toolbox([server("fake", fake_mcp.url, timeout=2)], clock) as box:
        listing = await box.listing("user_bob", "org_acme", TOKEN)
        assert listing.tools == {"fake": None} and listing.left_out == {"fake"}
        asked = len(fake_mcp.requests)
        fake_mcp.misbehave("tools/list", None)
        clock.advance(LEFT_OUT_SECONDS - 1)
        tools = await catalog(box)
        assert names(tools) == [] and len(fake_mcp.requests) == asked, "skipped: not even asked"
        refused = await tools.call("fake_echo", {"text": "hi"})
        assert refused.is_error and "unavailable right now: its server fake did not answer" in refused.content
        clock.advance(2)
        assert "fake_echo" in names(await catalog(box)), "asked again after 30 s"


async def test_a_server_that_is_down_is_left_out_and_the_others_are_still_offered(
    fake_mcp: FakeMcpServer, clock: Clock
) -> None:
    down = server("down", "http://127.0.0.1:9/mcp", timeout=2)
    async with toolbox([down, server("fake", fake_mcp.url)], clock) as box:
        tools = await catalog(box)
    assert tools.left_out == {"down"} and "fake_echo" in names(tools)


@pytest.mark.parametrize("behaviour", ["garbage", "huge", "error"])
async def test_a_listing_answered_with_garbage_leaves_the_server_out(
    fake_mcp: FakeMcpServer, clock: Clock, behaviour: Any
) -> None:
    fake_mcp.misbehave("*", behaviour)
    async with toolbox([server("fake", fake_mcp.url)], clock) as box:
        assert (await box.listing("user_bob", "org_acme", TOKEN)).left_out == {"fake"}


async def test_listings_are_cached_for_the_ttl_and_per_user_for_forward_servers(
    fake_mcp: FakeMcpServer, clock: Clock
) -> None:
    servers = [server("fake", fake_mcp.url, "forward")]
    async with toolbox(servers, clock, list_ttl_seconds=60) as box:
        await box.listing("user_bob", "org_acme", TOKEN)
        lists = fake_mcp.methods().count("tools/list")
        await box.listing("user_bob", "org_acme", TOKEN)
        assert fake_mcp.methods().count("tools/list") == lists, "cached"
        await box.listing("user_alice", "org_acme", "alices-token")
        assert fake_mcp.methods().count("tools/list") == lists + 1, "another user lists for themselves"
        assert fake_mcp.authorizations[-1] == "Bearer alices-token"
        clock.advance(61)
        await box.listing("user_bob", "org_acme", TOKEN)
        assert fake_mcp.methods().count("tools/list") == lists + 2, "expired"


async def test_a_server_marked_none_is_listed_once_for_everyone(
    fake_mcp: FakeMcpServer, clock: Clock
) -> None:
    async with toolbox([server("fake", fake_mcp.url)], clock) as box:
        await box.listing("user_bob", "org_acme", TOKEN)
        await box.listing("user_carol", "org_globex", "carols-token")
    assert fake_mcp.methods().count("tools/list") == 1


async def test_the_reference_server_is_listed_and_called_over_streamable_http(everything_url: str) -> None:
    async with toolbox([server("everything", everything_url)]) as box:
        tools = await catalog(box)
        offered = names(tools)
        assert {"everything_echo", "everything_get-sum", "everything_get-tiny-image"} <= set(offered)
        assert not needs_approval(tools.annotations("everything_echo"), "writes")
        assert needs_approval(tools.annotations("everything_toggle-simulated-logging"), "writes")
        echoed = await tools.call("everything_echo", {"message": "hello"})
        assert echoed.content == "Echo: hello" and not echoed.is_error
        summed = await tools.call("everything_get-sum", {"a": 2, "b": 3})
        assert "5" in summed.content
        image = await tools.call("everything_get-tiny-image", {})
        assert "[image: image/png" in image.content and "iVBOR" not in image.content
        resource = await tools.call(
            "everything_get-resource-reference", {"resourceType": "Text", "resourceId": 1}
        )
        assert "[resource <demo://resource/dynamic/text/1>, text/plain" in resource.content


async def test_the_example_app_sees_the_forwarded_identity(example_url: str) -> None:
    token = jwt.encode(
        {"sub": "user_bob", "org_id": "org_acme", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256"
    )
    async with toolbox([server("projects", example_url, "forward")]) as box:
        tools = await catalog(box, BOB, token)
        offered = names(tools)
        assert "projects_task_create" in offered and "projects_project_create" not in offered
        who = await tools.call("projects_whoami", {})
        assert '"user_id": "user_bob"' in who.content and '"org_id": "org_acme"' in who.content
        created = await tools.call(
            "projects_task_create", {"project": "Website relaunch", "title": "Ship it"}
        )
        assert not created.is_error and '"created_by": "user_bob"' in created.content


async def test_the_example_app_refuses_a_server_marked_none_since_it_gets_no_token(example_url: str) -> None:
    async with toolbox([server("projects", example_url)]) as box:
        listing = await box.listing("user_bob", "org_acme", TOKEN)
    assert listing.left_out == {"projects"}


def test_a_tool_with_an_oversized_or_non_object_schema_is_left_out() -> None:
    remote = RemoteServer(server("crm", "http://127.0.0.1:9/mcp"), httpx2.AsyncHTTPTransport())
    huge = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "x" * 100} for i in range(200)},
    }
    assert remote._tool(McpTool(name="big", input_schema=huge)) is None
    assert remote._tool(McpTool(name="odd", input_schema={"type": "array"})) is None
    fine = remote._tool(McpTool(name="ok", title="Okay", input_schema={"type": "object"}))
    assert fine is not None and (fine.source, fine.remote_name, fine.title, fine.permission) == (
        "crm",
        "ok",
        "Okay",
        None,
    )

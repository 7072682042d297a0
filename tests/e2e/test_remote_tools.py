"""The host application's own MCP servers, end to end through `POST /api/chatbot/message` with the fake
Anthropic API scripting the tool calls: the example app (`auth: forward`) and the reference server
(`auth: none`) beside the built-ins; permissions, approval of a remote write, the forwarded identity, the
audit trail, and servers that are down or slow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.projects.store import Store
from tests.e2e.conftest import SECRET, LiveServer, ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply, tool_names
from tests.fakes.mcp_server import FakeMcpServer
from tests.reference.servers import everything_server, example_app


@pytest.fixture(scope="module")
def everything_url() -> Iterator[str]:
    with everything_server() as url:
        yield url


@pytest.fixture
def projects(tmp_path: Path) -> Iterator[tuple[str, Store]]:
    with example_app(SECRET, tmp_path / "projects.sqlite") as found:
        yield found


@pytest.fixture
def app(start_server: ServerFactory, projects: tuple[str, Store], everything_url: str) -> LiveServer:
    return start_server(
        chatbot_mcp_servers=[
            {"name": "projects", "url": projects[0], "auth": "forward"},
            {"name": "everything", "url": everything_url},
        ]
    )


def offered(fake: FakeAnthropic, index: int = -1) -> list[str]:
    return tool_names(fake.message_requests[index].body)


async def audit(server: LiveServer) -> list[dict[str, Any]]:
    async with server.client() as client:
        response = await client.get("/api/chatbot/audit", headers=server.auth(user="user_alice"))
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_remote_tools_are_offered_beside_the_builtins_filtered_by_the_permission_meta(
    app: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    await app.message("hi", user="user_bob")
    bobs = offered(fake_anthropic)
    assert {"member_list", "projects_task_list", "projects_task_create", "everything_echo"} <= set(bobs)
    assert "projects_project_create" not in bobs and "projects_project_delete" not in bobs
    assert bobs == sorted(bobs)
    await app.message("hi", user="user_alice")
    assert {"projects_project_create", "projects_project_delete"} <= set(offered(fake_anthropic))


async def test_a_remote_read_runs_as_the_caller_and_is_audited(
    app: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.tool_use("projects_whoami", {}))
    fake_anthropic.enqueue(Reply.text("You are Bob."))
    stream = await app.message("who am I to the projects app?", user="user_bob")
    [result] = stream.of("tool_result")
    assert not result["is_error"] and '"user_id": "user_bob"' in result["content"]
    assert '"org_id": "org_acme"' in result["content"]
    assert stream.last["stop_reason"] == "end_turn"
    [entry] = [e for e in await audit(app) if e["tool"] == "projects_whoami"]
    assert (entry["user_id"], entry["status"], entry["approved"], entry["via"]) == (
        "user_bob",
        "ok",
        None,
        "chat",
    )


async def test_a_remote_write_waits_for_approval_and_runs_once_approved(
    app: LiveServer, fake_anthropic: FakeAnthropic, projects: tuple[str, Store]
) -> None:
    store = projects[1]
    before = len(store.list_tasks("org_acme"))
    arguments = {"project": "Website relaunch", "title": "Ship the relaunch"}
    fake_anthropic.enqueue(Reply.tool_use("projects_task_create", arguments))
    waiting = await app.message("add a task to ship it", user="user_bob")
    [asked] = waiting.of("approval_required")
    assert asked["summary"] == "Add a task (projects)\nproject: Website relaunch\ntitle: Ship the relaunch"
    assert waiting.last["stop_reason"] == "approval_required"
    assert len(store.list_tasks("org_acme")) == before, "nothing ran yet"

    fake_anthropic.enqueue(Reply.text("Added."))
    decided = await app.message(
        json_body={"conversation_id": waiting.conversation_id, "approvals": {asked["id"]: True}},
        user="user_bob",
    )
    [result] = decided.of("tool_result")
    assert not result["is_error"] and '"created_by": "user_bob"' in result["content"]
    assert [t.title for t in store.list_tasks("org_acme")].count("Ship the relaunch") == 1
    [entry] = [e for e in await audit(app) if e["tool"] == "projects_task_create"]
    assert (entry["status"], entry["approved"]) == ("ok", True)


async def test_a_remote_tool_the_role_does_not_permit_is_refused_before_reaching_its_server(
    app: LiveServer, fake_anthropic: FakeAnthropic, projects: tuple[str, Store]
) -> None:
    fake_anthropic.enqueue(Reply.tool_use("projects_project_delete", {"project": "Website relaunch"}))
    fake_anthropic.enqueue(Reply.text("I can't."))
    stream = await app.message("delete the relaunch project", user="user_bob")
    assert not stream.of("approval_required"), "a refused call is never put to the user"
    [result] = stream.of("tool_result")
    assert result["is_error"] and "organization:update" in result["content"]
    assert "Website relaunch" in [p.name for p in projects[1].list_projects("org_acme")]
    [entry] = [e for e in await audit(app) if e["tool"] == "projects_project_delete"]
    assert entry["status"] == "not_permitted"


async def test_an_image_from_the_reference_server_reaches_the_model_as_a_description(
    app: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.tool_use("everything_get-tiny-image", {}))
    fake_anthropic.enqueue(Reply.text("A tiny image."))
    await app.message("show me a picture", user="user_bob")
    sent = fake_anthropic.message_requests[-1].body["messages"][-1]["content"][0]
    assert sent["type"] == "tool_result" and "[image: image/png" in str(sent["content"])
    assert "iVBOR" not in str(sent["content"]), "no image data in the prompt"


async def test_the_token_goes_only_to_servers_marked_forward(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    with FakeMcpServer() as forwarded, FakeMcpServer() as kept:
        server = start_server(
            chatbot_mcp_servers=[
                {"name": "mine", "url": forwarded.url, "auth": "forward"},
                {"name": "other", "url": kept.url, "auth": "none"},
            ]
        )
        token = server.token("user_bob")
        fake_anthropic.enqueue(Reply.tool_uses(("mine_echo", {"text": "a"}), ("other_echo", {"text": "b"})))
        fake_anthropic.enqueue(Reply.text("Both answered."))
        stream = await server.message("echo", token=token)
        assert sorted(r["content"] for r in stream.of("tool_result")) == ["a", "b"]
        assert forwarded.authorizations and set(forwarded.authorizations) == {f"Bearer {token}"}
        assert kept.authorizations and set(kept.authorizations) == {None}


async def test_servers_that_are_down_or_slow_are_left_out_and_the_chat_still_works(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    with FakeMcpServer() as slow:
        slow.misbehave("*", "hang")
        server = start_server(
            chatbot_mcp_servers=[
                {"name": "down", "url": "http://127.0.0.1:9/mcp"},
                {"name": "slow", "url": slow.url, "timeout_seconds": 0.5},
            ]
        )
        stream = await server.message("hello", user="user_bob")
        assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 1}
        names = offered(fake_anthropic)
        assert "member_list" in names and not [n for n in names if n.startswith(("down_", "slow_"))]
        asked = len(slow.requests)
        # The next request does not wait for them again: both are skipped for 30 s.
        fake_anthropic.enqueue(Reply.tool_use("slow_echo", {"text": "hi"}))
        fake_anthropic.enqueue(Reply.text("It is away."))
        again = await server.message("echo", user="user_bob")
        assert len(slow.requests) == asked
        [result] = again.of("tool_result")
        assert result["is_error"] and "unavailable right now" in result["content"]


async def test_the_builtin_tools_can_be_left_out(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    with FakeMcpServer() as remote:
        server = start_server(
            chatbot_builtin_tools=False, chatbot_mcp_servers=[{"name": "crm", "url": remote.url}]
        )
        await server.message("hi", user="user_bob")
    names = offered(fake_anthropic)
    assert "crm_echo" in names and all(name.startswith("crm_") for name in names)


async def test_a_refused_request_stops_the_listing_at_once_and_the_server_stays_in(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeMcpServer() as slow:
        slow.misbehave("*", "hang")
        # Were the listing left to run, the refusal would wait its 60 s and the client (30 s) give up first.
        server = start_server(chatbot_mcp_servers=[{"name": "slow", "url": slow.url, "timeout_seconds": 60}])
        refused = await server.message("hello", user="user_erin")
        assert refused.status == 403
        assert not [r for r in caplog.records if "left out" in r.getMessage()], (
            "a refusal is not the server's fault"
        )

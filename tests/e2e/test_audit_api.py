"""The audit trail over HTTP: every tool call that ran, failed, was refused or declined, for the
organization's owners and admins only, newest first, a page at a time, filtered by user."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply, ToolCall


async def audit(server: LiveServer, user: str = "user_alice", org: str = "org_acme", **params: Any) -> Any:
    async with server.client() as client:
        return await client.get("/api/chatbot/audit", headers=server.auth(user=user, org=org), params=params)


async def test_every_call_is_recorded_with_its_outcome_and_whether_the_user_approved_it(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(
        Reply.tool_uses(
            ToolCall("member_list", {"role": "admin"}),
            ToolCall("member_get", {"user_id": "nobody"}),
            ToolCall("member_remove", {"user_id": "user_erin"}),
            ToolCall("invitation_create", {"email": "ivy@acme.test", "role": "member"}),
        )
    )
    waiting = await server.message("go")
    first, second = waiting.of("approval_required")
    fake_anthropic.enqueue(Reply.text("ok"))
    body = {"conversation_id": waiting.conversation_id, "approvals": {first["id"]: True, second["id"]: False}}
    await server.message(json_body=body)
    fake_anthropic.enqueue(
        Reply.tool_uses(ToolCall("member_remove", {"user_id": "user_alice"})), Reply.text("no")
    )
    await server.message("remove me", user="user_bob")  # not permitted for a member

    entries = (await audit(server)).json()["entries"]
    seen = [(e["tool"], e["status"], e["approved"], e["user_id"]) for e in entries]
    # Newest first, request by request (calls of one request run concurrently, so their order may vary).
    assert seen[0] == ("member_remove", "not_permitted", None, "user_bob")
    assert set(seen[1:3]) == {
        ("member_remove", "ok", True, "user_alice"),
        ("invitation_create", "declined", False, "user_alice"),
    }
    assert set(seen[3:]) == {
        ("member_list", "ok", None, "user_alice"),
        ("member_get", "error", None, "user_alice"),
    }
    removal = next(e for e in entries if e["tool"] == "member_remove" and e["status"] == "ok")
    assert removal["input"] == {"user_id": "user_erin"} and removal["via"] == "chat"
    assert removal["conversation_id"] == waiting.conversation_id and removal["request_id"].startswith("req_")
    assert "Erin" in removal["result"] and removal["at"].endswith("Z")


async def test_the_trail_pages_newest_first_and_filters_by_user(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    for user in ("user_alice", "user_bob", "user_alice"):
        fake_anthropic.enqueue(Reply.tool_uses(ToolCall("organization_get", {})), Reply.text("ok"))
        await server.message("which org?", user=user)
    page = (await audit(server, limit=2)).json()
    rest = (await audit(server, limit=2, cursor=page["next_cursor"])).json()
    assert len(page["entries"]) == 2 and len(rest["entries"]) == 1
    times = [e["at"] for e in page["entries"] + rest["entries"]]
    assert times == sorted(times, reverse=True)
    bobs = (await audit(server, user_id="user_bob")).json()["entries"]
    assert [e["user_id"] for e in bobs] == ["user_bob"]


async def test_only_owners_and_admins_read_the_trail_and_only_their_organizations(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.enqueue(Reply.tool_uses(ToolCall("organization_get", {})), Reply.text("ok"))
    await server.message("which org?")
    member = await audit(server, user="user_bob")
    viewer = await audit(server, user="user_erin")
    other_org = (await audit(server, user="user_carol", org="org_globex")).json()
    assert member.status_code == 403 and member.json()["error"] == "forbidden"
    assert viewer.status_code == 403
    assert other_org == {"entries": [], "next_cursor": None}


async def test_malformed_audit_queries_are_400s_naming_the_parameter(server: LiveServer) -> None:
    for params, name in (
        ({"limit": "101"}, "limit"),
        ({"cursor": "%%%"}, "cursor"),
        ({"user_id": ""}, "user_id"),
    ):
        response = await audit(server, **params)
        assert response.status_code == 400 and name in response.json()["message"], (params, response.json())

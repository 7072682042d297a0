"""Identity from the host over HTTP: the organization claim's name, roles from the token, a replaced role
table, and a demotion that takes effect at once; each endpoint that needs a permission uses the same source."""

from __future__ import annotations

import json
from typing import Any

import boto3
from chatbot.appdata import Member, member_item

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply


async def get(server: LiveServer, path: str, token: str) -> tuple[int, Any]:
    async with server.client() as client:
        response = await client.get(path, headers=server.auth(token))
    return response.status_code, response.json()


async def test_with_roles_from_the_token_a_user_the_app_data_does_not_know_chats_and_sees_its_endpoints(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    server = start_server(chatbot_role_source="claim", auth_role_claim="org_role")
    member = server.token("user_host_1", "org_host", org_role="member", name="Hana")
    admin = server.token("user_host_2", "org_host", org_role="admin")
    fake_anthropic.enqueue(Reply.text("Hi Hana."))

    stream = await server.message("hi", token=member)
    assert stream.status == 200 and stream.last["type"] == "done" and stream.text == "Hi Hana."
    assert "Hana" in json.dumps(fake_anthropic.message_requests[0].body["system"])
    status, listed = await get(server, "/api/chatbot/conversations", member)
    assert status == 200 and [c["id"] for c in listed["conversations"]] == [stream.conversation_id]
    status, usage = await get(server, "/api/chatbot/usage", member)
    assert status == 200 and usage["role"] == "member"
    assert (await get(server, "/api/chatbot/audit", member))[0] == 403
    assert (await get(server, "/api/chatbot/audit", admin))[0] == 200


async def test_with_roles_from_the_token_a_token_naming_no_role_is_refused(
    start_server: ServerFactory,
) -> None:
    server = start_server(chatbot_role_source="claim", auth_role_claim="org_role")
    token = server.token(
        "user_alice", "org_acme", role="admin"
    )  # a platform-wide `role`, not the one configured
    status, body = await get(server, "/api/chatbot/usage", token)
    assert status == 403 and "'org_role' claim" in body["message"]
    stream = await server.message("hi", token=token)
    assert stream.status == 403


async def test_chatbot_roles_replaces_the_role_table_for_chat_and_every_endpoint(
    start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    roles = {"member": {"chatbot": ["use"], "audit": ["read"]}, "viewer": {"chatbot": ["use"]}}
    server = start_server(chatbot_roles=json.dumps(roles))
    bob, alice, erin = (server.token(user) for user in ("user_bob", "user_alice", "user_erin"))

    assert (await get(server, "/api/chatbot/audit", bob))[0] == 200
    # Alice is an admin, a role the replaced table does not name: no permission at all.
    status, usage = await get(server, "/api/chatbot/usage", alice)
    assert status == 200 and usage["role"] == "admin" and usage["permissions"] == []
    assert (await server.message("hi", token=alice)).status == 403
    assert (await get(server, "/api/chatbot/conversations", alice))[0] == 403
    # Erin the viewer may now chat.
    assert (await server.message("hi", token=erin)).status == 200


async def test_the_organization_claim_is_the_one_auth_org_claim_names(start_server: ServerFactory) -> None:
    server = start_server(auth_org_claim="tenant")
    token = server.token("user_alice", "ignored", tenant="org_acme")
    status, usage = await get(server, "/api/chatbot/usage", token)
    assert status == 200 and usage["role"] == "admin"
    status, body = await get(server, "/api/chatbot/usage", server.token("user_alice", "org_acme"))
    assert status == 401 and "'tenant' claim" in body["message"]


async def test_with_the_membership_source_a_demotion_takes_effect_at_the_next_request(
    server: LiveServer, fake_anthropic: FakeAnthropic
) -> None:
    alice = server.token("user_alice", "org_acme")
    assert (await get(server, "/api/chatbot/audit", alice))[0] == 200
    assert (await server.message("hi", token=alice)).status == 200

    settings = server.settings
    table = boto3.client("dynamodb", endpoint_url=settings.aws_endpoint_url_dynamodb, region_name="us-east-1")
    demoted = Member("user_alice", "Alice Anders", "alice@acme.test", "viewer", "2025-01-01T00:00:00Z")
    table.put_item(TableName=settings.app_table, Item=member_item("org_acme", demoted))

    # The same, still valid token: the role is read again and the demotion holds at once.
    assert (await get(server, "/api/chatbot/audit", alice))[0] == 403
    stream = await server.message("hi", token=alice)
    assert stream.status == 403 and stream.error_body is not None
    assert stream.error_body["message"] == "The viewer role may not use the assistant."

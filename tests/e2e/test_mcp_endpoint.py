"""`POST /mcp` through the official Python SDK client over Streamable HTTP, against the app under uvicorn: the
listing and the calls follow each caller's role and organization, every call is audited with `via: "mcp"`,
and the HTTP edge refuses what it must (no token, a foreign origin, other methods, a caller over the rate)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.client import ConnectMode
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

from tests.e2e.conftest import LiveServer, ServerFactory

READS = ["member_get", "member_list", "organization_get"]
ALL = sorted(
    [
        *READS,
        "invitation_cancel",
        "invitation_create",
        "invitation_list",
        "member_remove",
        "member_update_role",
    ]
)
# The SDK negotiates the newest protocol by default; "legacy" is the initialize handshake older clients use.
MODES: list[ConnectMode] = ["auto", "legacy"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@contextlib.asynccontextmanager
async def mcp_client(
    server: LiveServer,
    user: str = "user_alice",
    org: str = "org_acme",
    *,
    mode: ConnectMode = "auto",
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Client]:
    """The SDK's client connected to the server's `/mcp` with `user`'s token."""
    http = httpx2.AsyncClient(headers={**server.auth(user=user, org=org), **(headers or {})})
    transport = streamable_http_client(f"{server.base_url}/mcp", http_client=http)
    async with http, Client(transport, mode=mode) as client:
        yield client


def text(result: Any) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


async def audit(server: LiveServer, org: str = "org_acme") -> list[dict[str, Any]]:
    entries, _ = await server.services.audit.page(org, limit=100, cursor=None, user_id=None)
    return entries


@pytest.mark.parametrize("mode", MODES)
async def test_each_role_lists_only_the_tools_it_permits(server: LiveServer, mode: ConnectMode) -> None:
    seen = {}
    for user in ("user_alice", "user_bob", "user_erin"):
        async with mcp_client(server, user, mode=mode) as client:
            seen[user] = sorted(t.name for t in (await client.list_tools()).tools)
    assert seen == {"user_alice": ALL, "user_bob": READS, "user_erin": READS}


async def test_listed_tools_keep_their_schema_annotations_and_permission(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    remove = tools["member_remove"]
    assert remove.annotations is not None and remove.annotations.destructive_hint is True
    assert set(remove.input_schema["properties"]) == {"user_id", "email"}
    assert (remove.meta or {})["chatbot.app/permission"] == "member:delete"
    assert tools["member_list"].annotations is not None and tools["member_list"].annotations.read_only_hint


@pytest.mark.parametrize("mode", MODES)
async def test_a_viewer_reads_without_chatbot_use_and_is_refused_a_change_with_an_error_result(
    server: LiveServer, mode: ConnectMode
) -> None:
    async with mcp_client(server, "user_erin", mode=mode) as client:
        members = await client.call_tool("member_list", {})
        refused = await client.call_tool("member_remove", {"user_id": "user_bob"})
    assert not members.is_error and "bob@acme.test" in text(members)
    assert refused.is_error and "Not permitted" in text(refused)
    assert await server.services.appdata.get_caller("org_acme", "user_bob") is not None


async def test_each_organization_sees_only_its_own_data_whatever_the_client_claims(
    server: LiveServer,
) -> None:
    forged = {"chatbot.app/caller": {"user_id": "user_alice", "org_id": "org_acme", "role": "admin"}}
    async with mcp_client(server, "user_dave", "org_globex") as client:
        organization = await client.call_tool("organization_get", {}, meta=forged)
        members = await client.call_tool("member_list", {})
        removal = await client.call_tool("member_remove", {"user_id": "user_bob"}, meta=forged)
    assert "Globex Corporation" in text(organization) and "Acme" not in text(organization)
    assert "dave@globex.test" in text(members) and "acme.test" not in text(members)
    assert removal.is_error and "Not permitted" in text(removal)


async def test_every_call_is_audited_via_mcp_without_conversation_or_approval(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        created = await client.call_tool("invitation_create", {"email": "ivy@acme.test", "role": "member"})
        failed = await client.call_tool("member_get", {"user_id": "nobody"})
    async with mcp_client(server, "user_erin") as client:
        await client.call_tool("invitation_cancel", {"email": "gina@acme.test"})
    assert not created.is_error and failed.is_error

    entries = await audit(server)
    seen = [(e["tool"], e["status"], e["user_id"]) for e in entries]
    assert seen == [
        ("invitation_cancel", "not_permitted", "user_erin"),
        ("member_get", "error", "user_alice"),
        ("invitation_create", "ok", "user_alice"),
    ]
    for entry in entries:
        assert entry["via"] == "mcp" and entry["approved"] is None
        assert entry["conversation_id"] is None and entry["request_id"] is None
    assert entries[2]["input"] == {"email": "ivy@acme.test", "role": "member"}
    assert "ivy@acme.test" in entries[2]["result"]
    assert await audit(server, "org_globex") == []


async def test_an_unknown_tool_is_an_error_result_and_is_audited(server: LiveServer) -> None:
    async with mcp_client(server) as client:
        result = await client.call_tool("drop_tables", {"org_id": "org_globex"})
    assert result.is_error and "Unknown tool" in text(result)
    assert [(e["tool"], e["status"]) for e in await audit(server)] == [("drop_tables", "error")]


async def test_calls_beyond_the_rate_get_a_json_rpc_error_saying_when_to_retry(
    start_server: ServerFactory,
) -> None:
    server = start_server(chatbot_mcp_calls_per_minute=2)
    async with mcp_client(server) as client:
        for _ in range(2):
            assert not (await client.call_tool("organization_get", {})).is_error
        with pytest.raises(MCPError) as refused:
            await client.call_tool("organization_get", {})
        assert (await client.list_tools()).tools  # listing is not a tool call
    assert refused.value.error.code == -32029
    assert "retry in" in refused.value.error.message
    data = refused.value.error.data
    assert isinstance(data, dict) and 1 <= data["retry_after_seconds"] <= 60
    assert data["limit_per_minute"] == 2
    async with mcp_client(server, "user_bob") as client:  # the limit is per user
        assert not (await client.call_tool("organization_get", {})).is_error
    assert len(await audit(server)) == 3  # the refused call never ran


async def test_no_or_bad_token_is_401_naming_the_resource_metadata(server: LiveServer) -> None:
    async with server.client() as http:
        missing = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
        bad = await http.post(
            "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "authorization": "Bearer x.y.z"}
        )
        metadata = await http.get("/.well-known/oauth-protected-resource")
        by_path = await http.get("/.well-known/oauth-protected-resource/mcp")
    where = f'resource_metadata="{server.base_url}/.well-known/oauth-protected-resource"'
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert missing.headers["www-authenticate"] == f"Bearer {where}"
    assert bad.status_code == 401
    assert bad.headers["www-authenticate"] == f'Bearer error="invalid_token", {where}'
    assert metadata.status_code == 200 and by_path.json() == metadata.json()
    assert metadata.json()["resource"] == f"{server.base_url}/mcp"
    assert metadata.json()["bearer_methods_supported"] == ["header"]


async def test_the_resource_metadata_names_the_issuer_as_authorization_server(
    start_server: ServerFactory,
) -> None:
    server = start_server(auth_issuer="https://auth.acme.test")
    async with server.client() as http:
        document = (await http.get("/.well-known/oauth-protected-resource")).json()
    assert document["authorization_servers"] == ["https://auth.acme.test"]


async def test_a_token_for_an_organization_the_user_is_not_in_is_403(server: LiveServer) -> None:
    async with server.client() as http:
        response = await http.post(
            "/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, **server.auth(user="user_alice", org="org_globex")},
        )
    assert response.status_code == 403 and response.json()["error"] == "forbidden"


async def test_a_foreign_origin_is_403_and_allowed_or_own_origins_pass(start_server: ServerFactory) -> None:
    server = start_server(cors_allow_origins="https://app.acme.test")
    statuses = {}
    async with server.client() as http:
        for origin in ("https://evil.example", "https://app.acme.test", server.base_url, None):
            headers = {**MCP_HEADERS, **server.auth(), **({"origin": origin} if origin else {})}
            response = await http.post("/mcp", json=INITIALIZE, headers=headers)
            statuses[origin] = response.status_code
        foreign = await http.post(
            "/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "origin": "https://evil.example"}
        )
    assert statuses == {
        "https://evil.example": 403,
        "https://app.acme.test": 200,
        server.base_url: 200,
        None: 200,
    }
    assert (
        foreign.status_code == 403 and foreign.json()["error"] == "forbidden"
    )  # before the token is looked at


async def test_a_rebound_host_is_refused_in_local_mode_before_the_token_counts(server: LiveServer) -> None:
    async with server.client() as http:
        rebound = await http.post(
            "/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, **server.auth(), "host": "evil.example", "origin": "http://evil.example"},
        )
        local = await http.post(
            "/mcp",
            json=INITIALIZE,
            headers={**MCP_HEADERS, **server.auth(), "host": f"localhost:{server.port}"},
        )
    assert rebound.status_code == 400 and rebound.json()["error"] == "invalid_request"
    assert local.status_code == 200


async def test_get_and_delete_are_405(server: LiveServer) -> None:
    async with server.client() as http:
        for method in ("GET", "DELETE"):
            response = await http.request(method, "/mcp", headers=server.auth())
            assert response.status_code == 405 and response.json()["error"] == "method_not_allowed"


async def test_the_endpoint_can_be_turned_off(start_server: ServerFactory) -> None:
    server = start_server(chatbot_mcp_endpoint=False)
    async with server.client() as http:
        posted = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **server.auth()})
        metadata = await http.get("/.well-known/oauth-protected-resource")
    assert posted.status_code == 404 and posted.json()["error"] == "not_found"
    assert metadata.status_code == 404


async def test_cors_lets_an_allowed_page_call_the_endpoint_and_read_the_challenge(
    start_server: ServerFactory,
) -> None:
    server = start_server(cors_allow_origins="https://app.acme.test")
    origin = {"origin": "https://app.acme.test"}
    async with server.client() as http:
        preflight = await http.options(
            "/mcp",
            headers={
                **origin,
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type, mcp-protocol-version",
            },
        )
        patch = await http.options(
            "/api/chatbot/conversations/c1",
            headers={
                **origin,
                "access-control-request-method": "PATCH",
                "access-control-request-headers": "last-event-id",
            },
        )
        refused = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **origin})
    assert preflight.status_code == 200 and patch.status_code == 200
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "last-event-id", "mcp-protocol-version"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert {"GET", "POST", "PATCH", "DELETE"} <= set(
        preflight.headers["access-control-allow-methods"].split(", ")
    )
    exposed = {h.strip() for h in refused.headers["access-control-expose-headers"].lower().split(",")}
    assert {"x-request-id", "retry-after", "www-authenticate"} <= exposed
    assert refused.status_code == 401 and "www-authenticate" in refused.headers


async def test_every_401_names_the_bearer_scheme(server: LiveServer) -> None:
    async with server.client() as http:
        response = await http.get("/api/chatbot/usage")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


async def test_a_call_that_outlasts_the_tool_timeout_is_an_audited_error_result(
    start_server: ServerFactory,
) -> None:
    server = start_server(chatbot_tool_timeout_seconds=0.5)

    async def hangs(*args: Any, **kwargs: Any) -> Any:
        await anyio.sleep_forever()  # the data never answers

    server.services.appdata.get_organization = hangs
    async with mcp_client(server) as client:
        result = await client.call_tool("organization_get", {})
    assert result.is_error and "timed out after 0.5 s" in text(result)
    assert [(e["tool"], e["status"]) for e in await audit(server)] == [("organization_get", "error")]


async def test_an_unreachable_rate_store_refuses_calls_with_a_json_rpc_error(
    start_server: ServerFactory,
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # nothing listens there once the socket closes
    server = start_server(redis_url=f"redis://127.0.0.1:{dead}/0")
    async with mcp_client(server) as client:
        assert (await client.list_tools()).tools  # listing counts nothing
        with pytest.raises(MCPError) as refused:
            await client.call_tool("organization_get", {})
    assert "unreachable" in refused.value.error.message
    assert await audit(server) == []  # the call never ran


async def test_a_body_over_64_kib_is_413_and_nothing_runs(server: LiveServer) -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "invitation_create", "arguments": {"email": "x" * 70_000, "role": "member"}},
    }
    async with server.client() as http:
        response = await http.post("/mcp", json=call, headers={**MCP_HEADERS, **server.auth()})
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert await audit(server) == []


async def test_with_roles_from_the_token_no_membership_record_is_needed(start_server: ServerFactory) -> None:
    server = start_server(chatbot_role_source="claim", auth_role_claim="org_role")
    token = server.token("user_zed", "org_acme", org_role="viewer")  # no membership record for user_zed
    http = httpx2.AsyncClient(headers=server.auth(token))
    async with http, Client(streamable_http_client(f"{server.base_url}/mcp", http_client=http)) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        members = await client.call_tool("member_list", {})
        refused = await client.call_tool("invitation_create", {"email": "ivy@acme.test", "role": "member"})
    assert names == READS and "alice@acme.test" in text(members)
    assert refused.is_error and "Not permitted" in text(refused)
    assert [(e["tool"], e["status"], e["user_id"]) for e in await audit(server)] == [
        ("invitation_create", "not_permitted", "user_zed"),
        ("member_list", "ok", "user_zed"),
    ]

"""Local mode (`make run`): the demo page, the bundle, the demo users and their development tokens."""

from __future__ import annotations

import jwt
from chatbot.app import create_app
from chatbot.settings import Settings

from tests.e2e.conftest import SECRET, LiveServer, ServerFactory


async def test_demo_users_and_their_tokens_let_the_page_chat_as_them(server: LiveServer) -> None:
    async with server.client() as client:
        users = (await client.get("/api/dev/users")).json()
        assert {u["user_id"] for u in users} == {
            "user_alice",
            "user_bob",
            "user_erin",
            "user_carol",
            "user_dave",
        }
        minted = (await client.post("/api/dev/token", json={"user_id": "user_carol"})).json()
    claims = jwt.decode(minted["token"], SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["org_id"], claims["exp"]) == (
        "user_carol",
        "org_globex",
        minted["expires_at"],
    )
    assert (await server.message("hi", token=minted["token"])).status == 200


async def test_demo_tokens_follow_the_configured_organization_and_role_claims(
    start_server: ServerFactory,
) -> None:
    server = start_server(auth_org_claim="tenant", chatbot_role_source="claim", auth_role_claim="org_role")
    async with server.client() as client:
        minted = (await client.post("/api/dev/token", json={"user_id": "user_erin"})).json()
        usage = await client.get("/api/chatbot/usage", headers=server.auth(minted["token"]))
    claims = jwt.decode(minted["token"], SECRET, algorithms=["HS256"])
    assert (claims["tenant"], claims["org_role"], claims["name"]) == ("org_acme", "viewer", "Erin Evans")
    assert "org_id" not in claims
    assert usage.status_code == 200 and usage.json()["role"] == "viewer"


async def test_tokens_are_only_minted_for_demo_users(server: LiveServer) -> None:
    async with server.client() as client:
        unknown = await client.post("/api/dev/token", json={"user_id": "user_mallory"})
        garbage = await client.post("/api/dev/token", content=b"{nope")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_request"
    assert garbage.status_code == 400


async def test_the_demo_page_is_served_at_the_root(server: LiveServer) -> None:
    async with server.client() as client:
        page = await client.get("/")
    assert page.status_code == 200 and "<chatbot-sheet" in page.text


def test_deployed_mode_serves_no_dev_routes() -> None:
    routes = {getattr(r, "path", "") for r in create_app(Settings(chatbot_local=False)).routes}
    assert "/api/dev/token" not in routes and "/" not in routes and "/static" not in routes


async def test_the_local_server_refuses_a_host_that_is_not_loopback(server: LiveServer) -> None:
    # Found in review: after a DNS rebind, a web page at evil.example could mint demo tokens and spend the
    # developer's real API key through the local server.
    async with server.client() as client:
        minted = await client.post(
            "/api/dev/token", json={"user_id": "user_alice"}, headers={"host": "evil.example:3000"}
        )
        health = await client.get("/healthz", headers={"host": "evil.example"})
        allowed = [
            (await client.get("/healthz", headers={"host": host})).status_code
            for host in ("127.0.0.1:3000", "localhost", "LOCALHOST:8080", "[::1]:3000")
        ]
    assert minted.status_code == 400 and health.status_code == 400
    body = minted.json()
    assert body["error"] == "invalid_request" and "localhost" in body["message"]
    assert allowed == [200, 200, 200, 200]

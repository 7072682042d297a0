"""Tokens of a real Better Auth host: the pinned `better-auth` npm package with its `jwt` and `organization`
plugins (tests/e2e/better_auth/server.mjs) signs them with its EdDSA key, published at its JWKS endpoint;
the chatbot verifies them as the README's "Connect your app" section sets it up.

The host is driven over HTTP only, as its own front end would: sign up, create an organization, make it
the active one, invite a member, then `GET /api/auth/token`.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.fakes.anthropic_api import FakeAnthropic, Reply
from tests.processes import stop

HOST_DIR = Path(__file__).parent / "better_auth"
STARTUP_SECONDS = 30
PASSWORD = "correct-horse-battery-staple"
ROLE_CLAIM = "organizationRole"  # what server.mjs's definePayload names it
ORG_CLAIM = "activeOrganizationId"


@pytest.fixture(scope="module")
def better_auth() -> Iterator[str]:
    """The Better Auth host, started once for this module; its base URL (also its issuer and audience)."""
    if not (HOST_DIR / "node_modules" / "better-auth").is_dir():
        pytest.fail(
            "better-auth is not installed: run `make test` (or `npm ci --prefix tests/e2e/better_auth`)"
        )
    process = subprocess.Popen(
        ["node", "server.mjs"], cwd=HOST_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        yield _ready_line(process)["base_url"]
    finally:
        stop(process)


def _ready_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    """The host's one line of JSON saying where it listens, waited for at most STARTUP_SECONDS."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=STARTUP_SECONDS):
            raise RuntimeError("the Better Auth host did not start in time")
    line = process.stdout.readline()
    if not line:
        errors = process.stderr.read() if process.stderr else ""
        raise RuntimeError(f"the Better Auth host exited: {errors}")
    ready: dict[str, Any] = json.loads(line)
    return ready


@dataclass
class Account:
    """A signed-in Better Auth user: their session cookie lives in `client`."""

    client: httpx.AsyncClient
    user_id: str
    email: str

    async def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, f"/api/auth{path}", **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def token(self) -> str:
        """A JWT from the jwt plugin's token endpoint, for the session's active organization."""
        issued: str = (await self.call("GET", "/token"))["token"]
        return issued


@pytest.fixture
async def sign_up(better_auth: str) -> AsyncIterator[Any]:
    """Sign up fresh users on the host (each with their own session)."""
    clients: list[httpx.AsyncClient] = []

    async def create(name: str) -> Account:
        # Better Auth refuses cookie-authenticated writes from an unknown Origin: send the app's own.
        client = httpx.AsyncClient(base_url=better_auth, headers={"origin": better_auth}, timeout=30)
        clients.append(client)
        email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.test"
        response = await client.post(
            "/api/auth/sign-up/email", json={"email": email, "password": PASSWORD, "name": name}
        )
        assert response.status_code == 200, response.text
        return Account(client, response.json()["user"]["id"], email)

    yield create
    for client in clients:
        await client.aclose()


async def organization(owner: Account, name: str) -> str:
    """A new organization of `owner`'s, made their active one with the organization plugin's set-active."""
    created = await owner.call(
        "POST",
        "/organization/create",
        json={
            "name": name,
            "slug": f"{name.lower()}-{uuid.uuid4().hex[:8]}",
            "keepCurrentActiveOrganization": True,
        },
    )
    await owner.call("POST", "/organization/set-active", json={"organizationId": created["id"]})
    org_id: str = created["id"]
    return org_id


async def join(owner: Account, member: Account, role: str) -> None:
    """`owner` invites `member` into their active organization with `role`; `member` accepts (which makes it
    their active organization)."""
    invitation = await owner.call(
        "POST", "/organization/invite-member", json={"email": member.email, "role": role}
    )
    await member.call("POST", "/organization/accept-invitation", json={"invitationId": invitation["id"]})


def chatbot_settings(better_auth: str, **overrides: Any) -> dict[str, Any]:
    """The chatbot configured against the host as the README says: its JWKS, its base URL as issuer and
    audience, the organization and role claims its definePayload sets."""
    return {
        "auth_jwt_secret": None,
        "auth_jwks_url": f"{better_auth}/api/auth/jwks",
        "auth_issuer": better_auth,
        "auth_audience": better_auth,
        "auth_org_claim": ORG_CLAIM,
        "chatbot_role_source": "claim",
        "auth_role_claim": ROLE_CLAIM,
        **overrides,
    }


async def usage(server: LiveServer, token: str) -> httpx.Response:
    async with server.client() as client:
        return await client.get("/api/chatbot/usage", headers=server.auth(token))


async def test_a_better_auth_owner_token_is_verified_by_its_jwks_and_chats_with_the_role_it_carries(
    better_auth: str, sign_up: Any, start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    owner = await sign_up("Olivia")
    org_id = await organization(owner, "Initech")
    token = await owner.token()
    header, claims = jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})
    # What Better Auth itself put there: an EdDSA signature, its base URL as issuer and audience, and the
    # definePayload claims.
    assert header["alg"] == "EdDSA"
    assert (claims["iss"], claims["aud"], claims["sub"]) == (better_auth, better_auth, owner.user_id)
    assert (claims[ORG_CLAIM], claims[ROLE_CLAIM]) == (org_id, "owner")
    server = start_server(**chatbot_settings(better_auth))

    report = await usage(server, token)
    assert report.status_code == 200, report.text
    assert report.json()["role"] == "owner" and "chatbot:use" in report.json()["permissions"]

    fake_anthropic.enqueue(Reply.text("Hello Olivia."))
    stream = await server.message("hi", token=token)
    assert stream.status == 200
    assert stream.last == {"type": "done", "stop_reason": "end_turn", "iterations": 1}
    assert stream.text == "Hello Olivia."
    # No membership record exists for this user anywhere in the chatbot's data: the role came from the token.
    assert await server.services.appdata.get_caller(org_id, owner.user_id) is None
    system = json.dumps(fake_anthropic.message_requests[-1].body["system"])
    assert "Olivia" in system and "owner" in system
    # The usage was booked to the token's user and organization.
    tiers = (await usage(server, token)).json()["tiers"]
    assert tiers["user"]["used"] > 0 and tiers["organization"]["used"] == tiers["user"]["used"]


async def test_a_better_auth_viewer_token_reads_usage_but_may_not_chat(
    better_auth: str, sign_up: Any, start_server: ServerFactory, fake_anthropic: FakeAnthropic
) -> None:
    owner, viewer = await sign_up("Victor"), await sign_up("Vera")
    await organization(owner, "Hooli")
    await join(owner, viewer, "viewer")
    token = await viewer.token()
    server = start_server(**chatbot_settings(better_auth))

    report = await usage(server, token)
    assert report.status_code == 200
    assert report.json()["role"] == "viewer" and "chatbot:use" not in report.json()["permissions"]
    stream = await server.message("hi", token=token)
    assert stream.status == 403 and stream.error_body is not None
    assert stream.error_body["error"] == "forbidden"
    assert fake_anthropic.message_requests == []


async def test_a_better_auth_member_token_is_refused_with_the_membership_source_when_no_record_exists(
    better_auth: str, sign_up: Any, start_server: ServerFactory
) -> None:
    # Same host, same token, but the chatbot reads roles from its own membership records, where this
    # organization is unknown: a token for an organization the chatbot has no record of is refused.
    owner = await sign_up("Mallory")
    await organization(owner, "Umbrella")
    server = start_server(
        **chatbot_settings(better_auth, chatbot_role_source="membership", auth_role_claim=None)
    )

    report = await usage(server, await owner.token())
    assert report.status_code == 403
    assert report.json() == {"error": "forbidden", "message": "You are not a member of this organization."}


async def test_a_better_auth_token_without_an_active_organization_is_refused(
    better_auth: str, sign_up: Any, start_server: ServerFactory
) -> None:
    loner = await sign_up("Lone")
    server = start_server(**chatbot_settings(better_auth))

    report = await usage(server, await loner.token())
    assert report.status_code == 401
    assert ORG_CLAIM in report.json()["message"]


async def test_a_better_auth_token_is_refused_by_a_chatbot_expecting_another_audience(
    better_auth: str, sign_up: Any, start_server: ServerFactory
) -> None:
    owner = await sign_up("Ada")
    await organization(owner, "Cyberdyne")
    server = start_server(**chatbot_settings(better_auth, auth_audience="https://other-app.example"))

    report = await usage(server, await owner.token())
    assert report.status_code == 401
    assert "audience" in report.json()["message"]

"""The example app's MCP server: its tools declare the chatbot permission they need
(`_meta["chatbot.app/permission"]`) and MCP annotations (read-only, destructive), and every call learns who
is calling from the bearer token the chatbot forwards (`auth: "forward"`), verified with the same key as the
chatbot's (`AUTH_JWT_SECRET`, or `AUTH_JWKS_URL` with `AUTH_ISSUER` and `AUTH_AUDIENCE`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import anyio.to_thread
import jwt
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from starlette.applications import Starlette

from .store import NotFound, Store, as_dict

PERMISSION = "chatbot.app/permission"
ProjectRef = Annotated[str, Field(description="The project's name or id.", min_length=1, max_length=200)]
READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
ADD = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
UPDATE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
DELETE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)


@dataclass(frozen=True)
class JwtVerifier:
    """Verifies the forwarded bearer token as the chatbot does: HS256 with a shared secret (local mode), or
    asymmetric keys from a JWKS with issuer and audience checked."""

    secret: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    org_claim: str = "org_id"

    @classmethod
    def from_environment(cls) -> JwtVerifier:
        """The chatbot's own variables: `AUTH_JWT_SECRET`, or `AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`."""
        verifier = cls(
            secret=os.environ.get("AUTH_JWT_SECRET") or None,
            jwks_url=os.environ.get("AUTH_JWKS_URL") or None,
            issuer=os.environ.get("AUTH_ISSUER") or None,
            audience=os.environ.get("AUTH_AUDIENCE") or None,
            org_claim=os.environ.get("AUTH_ORG_CLAIM") or "org_id",
        )
        if verifier.secret is None and verifier.jwks_url is None:
            raise SystemExit(
                "Set AUTH_JWT_SECRET (the chatbot's) or AUTH_JWKS_URL to verify forwarded tokens."
            )
        return verifier

    def _claims(self, token: str) -> dict[str, Any]:
        if self.jwks_url is not None:
            key = jwt.PyJWKClient(self.jwks_url, cache_keys=True).get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                key.key,
                algorithms=["EdDSA", "ES256", "RS256"],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp", "sub"]},
            )
        assert self.secret is not None
        return jwt.decode(token, self.secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's subject and claims, or None (the SDK's bearer middleware then answers 401)."""
        try:
            claims = await anyio.to_thread.run_sync(self._claims, token)
        except (jwt.PyJWTError, OSError):
            return None
        if not isinstance(claims.get(self.org_claim), str):
            return None
        return AccessToken(
            token=token,
            client_id="chatbot",
            scopes=[],
            expires_at=claims["exp"],
            subject=claims["sub"],
            claims=claims,
        )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def build_server(store: Store, verifier: JwtVerifier, *, base_url: str) -> MCPServer:
    """The MCP server with the example's tools over `store`, served at `<base_url>/mcp` as an OAuth
    resource server: the SDK's bearer middleware verifies each request's token with `verifier`."""
    server: MCPServer = MCPServer(
        "projects",
        instructions="Projects and tasks of the caller's organization.",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=verifier.issuer or base_url,
            resource_server_url=f"{base_url}/mcp",
            # The forwarded token was issued for the chatbot, not for this server: it is the user's session
            # token, trusted here because it is signed by the same issuer (audience checked with JWKS).
            validate_token_resource=False,
        ),
    )

    def caller() -> tuple[str, str]:
        """(user id, organization id) of the verified token this request carried."""
        token = get_access_token()
        if token is None or token.subject is None or not token.claims:
            raise ToolError("No verified caller on this request.")
        return token.subject, token.claims[verifier.org_claim]

    async def run(fn: Any, *args: Any) -> str:
        try:
            return _json(await anyio.to_thread.run_sync(fn, *args))
        except (NotFound, ValueError) as exc:
            raise ToolError(str(exc)) from exc

    @server.tool(title="Who am I", annotations=READ, structured_output=False)
    async def whoami() -> str:
        """Who this server thinks is calling: the user and organization of the forwarded token."""
        user_id, org_id = caller()
        return _json({"user_id": user_id, "org_id": org_id})

    @server.tool(
        title="List projects",
        annotations=READ,
        meta={PERMISSION: "organization:read"},
        structured_output=False,
    )
    async def project_list() -> str:
        """List your organization's projects with their number of open tasks."""
        _, org_id = caller()
        return await run(lambda: [as_dict(p) for p in store.list_projects(org_id)])

    @server.tool(
        title="Create a project",
        annotations=ADD,
        meta={PERMISSION: "organization:update"},
        structured_output=False,
    )
    async def project_create(name: Annotated[str, Field(min_length=1, max_length=200)]) -> str:
        """Create a project (owners and admins)."""
        user_id, org_id = caller()
        return await run(lambda: as_dict(store.create_project(org_id, user_id, name)))

    @server.tool(
        title="Delete a project",
        annotations=DELETE,
        meta={PERMISSION: "organization:update"},
        structured_output=False,
    )
    async def project_delete(project: ProjectRef) -> str:
        """Delete a project and all its tasks (owners and admins)."""
        _, org_id = caller()
        return await run(store.delete_project, org_id, project)

    @server.tool(
        title="List tasks", annotations=READ, meta={PERMISSION: "organization:read"}, structured_output=False
    )
    async def task_list(
        project: ProjectRef | None = None, status: Literal["open", "done"] | None = None
    ) -> str:
        """List tasks, optionally of one project or one status."""
        _, org_id = caller()
        return await run(lambda: [as_dict(t) for t in store.list_tasks(org_id, project, status)])

    # No permission meta: every member may add and finish tasks; the server scopes them to the caller's
    # organization itself.
    @server.tool(title="Add a task", annotations=ADD, structured_output=False)
    async def task_create(
        project: ProjectRef,
        title: Annotated[str, Field(min_length=1, max_length=500)],
        assignee: Annotated[str | None, Field(description="A user id.")] = None,
    ) -> str:
        """Add a task to a project."""
        user_id, org_id = caller()
        return await run(lambda: as_dict(store.create_task(org_id, user_id, project, title, assignee)))

    @server.tool(title="Complete a task", annotations=UPDATE, structured_output=False)
    async def task_complete(task_id: Annotated[str, Field(min_length=1, max_length=100)]) -> str:
        """Mark a task done."""
        _, org_id = caller()
        return await run(lambda: as_dict(store.complete_task(org_id, task_id)))

    return server


def create_app(store: Store, verifier: JwtVerifier, *, base_url: str) -> Starlette:
    """The ASGI app serving the MCP server at `<base_url>/mcp`: stateless, JSON responses, bearer auth (401
    without a valid token)."""
    server = build_server(store, verifier, base_url=base_url)
    return server.streamable_http_app(stateless_http=True, json_response=True)

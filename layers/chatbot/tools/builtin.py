"""The built-in tools over the application data: the MCP server that defines them, and `BuiltinTools`, which
lists and calls them in-process.

One `MCPServer` defines the tools (`build_server`); the chatbot reaches it in-process through one
`mcp.Client`. The caller's identity travels in the request's `_meta` (set by `BuiltinTools.call` from the
server-side `Caller`, never from the model's arguments), and the organization is always the caller's own: no
tool takes an organization. Every tool declares its permission in its MCP `_meta`; the listing is filtered
by it, and it is checked both in `BuiltinTools.call` and again inside the server before the tool body runs.
A server reached by other clients (the MCP endpoint) passes its own `caller_of`, which must take the caller
from the authenticated request, never from anything the client sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

import anyio
from mcp import Client, MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.func_metadata import func_metadata
from mcp.types import RequestParamsMeta, TextContent, ToolAnnotations
from pydantic import Field, ValidationError

from ..appdata import AppData, Member
from ..approval import generic_summary
from ..errors import AppDataError, Unavailable
from ..permissions import Caller, Role
from .tool import (
    PERMISSION_META_KEY,
    Tool,
    ToolResult,
    argument_problem,
    capped,
    compact_schema,
    not_permitted,
)

logger = logging.getLogger(__name__)

CALLER_META_KEY = "chatbot.app/caller"

READ = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
ADD = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
CHANGE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False
)

UserId = Annotated[str | None, Field(description="The member's user id.", min_length=1, max_length=200)]
Email = Annotated[str | None, Field(description="The member's email address.", min_length=3, max_length=254)]


_CALLER_TEXT = ("user_id", "org_id", "role", "name", "email", "org_name")


def caller_meta(caller: Caller) -> RequestParamsMeta:
    """The request `_meta` that tells the server who is calling and what their role may do (as resolved by
    the configured role source and table)."""
    described: dict[str, Any] = {name: getattr(caller, name) for name in _CALLER_TEXT}
    described["permissions"] = sorted(caller.permissions)
    return cast(RequestParamsMeta, {CALLER_META_KEY: described})


def caller_from_meta(ctx: Context) -> Caller:
    """The caller our client put in the request `_meta`; a request without a valid one is refused."""
    meta = ctx.request_context.meta or {}
    raw = meta.get(CALLER_META_KEY)
    if not isinstance(raw, dict) or not all(isinstance(raw.get(name, ""), str) for name in _CALLER_TEXT):
        raise ToolError("No caller identity on this request.")
    permissions = raw.get("permissions")
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise ToolError("No caller identity on this request.")
    if not raw.get("user_id") or not raw.get("org_id") or not raw.get("role"):
        raise ToolError("No caller identity on this request.")
    return Caller(**{name: raw.get(name, "") for name in _CALLER_TEXT}, granted=frozenset(permissions))


# ------------------------------------------------------------------------------------------ the tools
# Each handler takes the application data and the caller, then the tool's own arguments (which make its
# input schema); it returns JSON-ready data.


async def organization_get(data: AppData, caller: Caller) -> Any:
    return (await data.get_organization(caller.org_id)).to_dict()


async def member_list(
    data: AppData,
    caller: Caller,
    role: Annotated[Role | None, Field(description="Only members with this role.")] = None,
) -> Any:
    members = await data.list_members(caller.org_id, role=role)
    return {"count": len(members), "members": [m.to_dict() for m in members]}


async def member_get(data: AppData, caller: Caller, user_id: UserId = None, email: Email = None) -> Any:
    return (await data.get_member(caller.org_id, user_id=user_id, email=email)).to_dict()


async def member_update_role(
    data: AppData,
    caller: Caller,
    role: Annotated[Role, Field(description="The new role.")],
    user_id: UserId = None,
    email: Email = None,
) -> Any:
    member, previous = await data.update_member_role(caller, role, user_id=user_id, email=email)
    return {"member": member.to_dict(), "previous_role": previous, "changed": previous != member.role}


async def member_remove(data: AppData, caller: Caller, user_id: UserId = None, email: Email = None) -> Any:
    return {"removed": (await data.remove_member(caller, user_id=user_id, email=email)).to_dict()}


async def invitation_list(data: AppData, caller: Caller) -> Any:
    invitations = await data.list_invitations(caller.org_id)
    return {"count": len(invitations), "invitations": [i.to_dict() for i in invitations]}


async def invitation_create(
    data: AppData,
    caller: Caller,
    email: Annotated[str, Field(description="Address to invite.", min_length=3, max_length=254)],
    role: Annotated[Role, Field(description="Role on joining.")],
) -> Any:
    return {"invitation": (await data.create_invitation(caller, email, role)).to_dict()}


async def invitation_cancel(
    data: AppData,
    caller: Caller,
    invitation_id: Annotated[str | None, Field(description="The invitation id.", min_length=1)] = None,
    email: Annotated[str | None, Field(description="The invited address.", min_length=3)] = None,
) -> Any:
    canceled = await data.cancel_invitation(caller, invitation_id=invitation_id, email=email)
    return {"canceled": canceled.to_dict()}


# ------------------------------------------------------------------------------------------ summaries
# What a change would do, in words the person deciding can judge, built from the tool and its input and the
# current data: never from the model's text.

Summary = Callable[[AppData, Caller, dict[str, Any]], Awaitable[str]]


async def _member_of(data: AppData, caller: Caller, arguments: dict[str, Any]) -> Member | None:
    try:
        return await data.get_member(
            caller.org_id, user_id=arguments.get("user_id"), email=arguments.get("email")
        )
    except AppDataError:
        return None


def _named(member: Member | None, arguments: dict[str, Any]) -> str:
    """ "Bob Brown (bob@acme.test)", or the identifier given when there is no such member."""
    if member is None:
        return f"{arguments.get('user_id') or arguments.get('email') or 'someone'} (no such member now)"
    return f"{member.name} ({member.email})"


async def _member_role_summary(data: AppData, caller: Caller, arguments: dict[str, Any]) -> str:
    member = await _member_of(data, caller, arguments)
    current = f" from {member.role}" if member else ""
    where = caller.org_name or caller.org_id
    return f"Change the role of {_named(member, arguments)}{current} to {arguments.get('role')} in {where}"


async def _member_remove_summary(data: AppData, caller: Caller, arguments: dict[str, Any]) -> str:
    member = await _member_of(data, caller, arguments)
    return f"Remove {_named(member, arguments)} from {caller.org_name or caller.org_id}"


async def _invitation_create_summary(data: AppData, caller: Caller, arguments: dict[str, Any]) -> str:
    return f"Invite {arguments.get('email')} to {caller.org_name or caller.org_id} as {arguments.get('role')}"


async def _invitation_cancel_summary(data: AppData, caller: Caller, arguments: dict[str, Any]) -> str:
    email = arguments.get("email")
    if email is None:
        found = [
            i
            for i in await data.list_invitations(caller.org_id)
            if i.invitation_id == arguments.get("invitation_id")
        ]
        email = (
            found[0].email if found else f"{arguments.get('invitation_id')} (no such pending invitation now)"
        )
    return f"Cancel the invitation of {email} to {caller.org_name or caller.org_id}"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as data: its name, the permission it needs, its MCP annotations, what the model is told, its
    handler, and (for a change) how to say in plain words what a call would do."""

    name: str
    permission: str
    annotations: ToolAnnotations
    description: str
    handler: Callable[..., Awaitable[Any]]
    summary: Summary | None = None


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        "organization_get",
        "organization:read",
        READ,
        "Get your organization: id, name, member count, created.",
        organization_get,
    ),
    ToolSpec(
        "member_list",
        "member:read",
        READ,
        "List your organization's members (user id, name, email, role, joined), optionally of one role.",
        member_list,
    ),
    ToolSpec("member_get", "member:read", READ, "Get one member by user_id or email (give one).", member_get),
    ToolSpec(
        "member_update_role",
        "member:update",
        CHANGE,
        "Change a member's role, member found by user_id or email (give one). "
        "Roles rank owner > admin > member > viewer.",
        member_update_role,
        _member_role_summary,
    ),
    ToolSpec(
        "member_remove",
        "member:delete",
        CHANGE,
        "Remove a member, found by user_id or email (give one).",
        member_remove,
        _member_remove_summary,
    ),
    ToolSpec(
        "invitation_list",
        "invitation:read",
        READ,
        "List pending invitations (id, email, role, inviter, created).",
        invitation_list,
    ),
    ToolSpec(
        "invitation_create",
        "invitation:create",
        ADD,
        "Invite an email address to join with a role.",
        invitation_create,
        _invitation_create_summary,
    ),
    ToolSpec(
        "invitation_cancel",
        "invitation:cancel",
        CHANGE,
        "Cancel a pending invitation by id or email (give one).",
        invitation_cancel,
        _invitation_cancel_summary,
    ),
)
"""The built-in tools (README, "Tools")."""


CallerOf = Callable[[Context], Caller]
"""How a tool finds who is calling: from the request `_meta` our own in-process client sets
(`caller_from_meta`), or, for a server other clients reach, from the authenticated request."""


def permitted(caller: Caller) -> list[ToolSpec]:
    """The built-in tools `caller`'s role allows, by name."""
    return sorted((spec for spec in TOOLS if caller.can(spec.permission)), key=lambda spec: spec.name)


def _bound(spec: ToolSpec, data: AppData, caller_of: CallerOf) -> Callable[..., Awaitable[str]]:
    """`spec`'s handler as an MCP tool function: it takes the request `Context` in place of the data and
    the caller, refuses a caller whose role lacks the permission, and turns refusals into tool errors.
    Its signature (without the first two parameters) is what the SDK makes the input schema from."""

    async def run(ctx: Context, **arguments: Any) -> str:
        caller = caller_of(ctx)
        if not caller.can(spec.permission):
            raise ToolError(not_permitted(caller, spec.name, spec.permission))
        try:
            return _json(await spec.handler(data, caller, **arguments))
        except AppDataError as exc:
            raise ToolError(str(exc)) from exc
        except Unavailable as exc:
            raise ToolError(exc.message) from exc

    own = list(inspect.signature(spec.handler, eval_str=True).parameters.values())[2:]
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    run.__signature__ = inspect.Signature([context, *(p.replace(kind=p.KEYWORD_ONLY) for p in own)])  # type: ignore[attr-defined]
    run.__annotations__ = {"ctx": Context, **{p.name: p.annotation for p in own}, "return": str}
    run.__name__ = spec.name
    return run


def build_server(data: AppData, caller_of: CallerOf = caller_from_meta) -> MCPServer:
    """The MCP server with the built-in tools, each bound to `data`, each checking the permission of the
    caller `caller_of` finds before it runs."""
    server: MCPServer = MCPServer("chatbot-app", instructions="Tools over the caller's own organization.")
    for spec in TOOLS:
        server.add_tool(
            _bound(spec, data, caller_of),
            name=spec.name,
            description=spec.description,
            annotations=spec.annotations,
            meta={PERMISSION_META_KEY: spec.permission},
            structured_output=False,
        )
    return server


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class BuiltinTools:
    """Owns the built-in MCP server and one in-process client; created once in the app lifespan."""

    def __init__(
        self, appdata: AppData, *, timeout_seconds: float = 20, max_result_chars: int = 20_000
    ) -> None:
        self.server = build_server(appdata)
        self._data = appdata
        self._summaries = {spec.name: spec.summary for spec in TOOLS}
        # The same argument models the server validates with, so a call it would refuse is refused here,
        # before anyone is asked to approve it.
        self._arguments = {
            spec.name: func_metadata(spec.handler, skip_names=["data", "caller"]).arg_model for spec in TOOLS
        }
        self.timeout_seconds = timeout_seconds
        self.max_result_chars = max_result_chars
        self._client: Client | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._tools: dict[str, Tool] = {}

    async def __aenter__(self) -> BuiltinTools:
        """Connect the in-process client and cache the tool listing (it does not change at runtime)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[Client] = loop.create_future()
        self._stop = asyncio.Event()
        # The client's task group lives in a task of its own, so the tools may be closed from another task
        # than the one that opened them (pytest fixtures, some lifespan runners).
        self._runner = asyncio.create_task(self._hold_open(ready, self._stop), name="builtin-mcp-client")
        try:
            self._client = await ready
        except BaseException:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            raise
        return self

    async def _hold_open(self, ready: asyncio.Future[Client], stop: asyncio.Event) -> None:
        try:
            async with Client(self.server) as client:
                listing = await client.list_tools()
                while True:
                    for t in listing.tools:
                        permission = (t.meta or {}).get(PERMISSION_META_KEY)
                        if not isinstance(permission, str):
                            raise RuntimeError(f"tool {t.name} declares no permission")
                        self._tools[t.name] = Tool(
                            t.name,
                            t.description or "",
                            compact_schema(t.input_schema),
                            t.annotations,
                            permission,
                            remote_name=t.name,
                        )
                    if listing.next_cursor is None:
                        break
                    listing = await client.list_tools(cursor=listing.next_cursor)
                ready.set_result(client)
                await stop.wait()
        except asyncio.CancelledError:
            ready.cancel()
            raise
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)

    async def __aexit__(self, *exc: object) -> None:
        """Close the in-process client."""
        self._client = None
        if self._runner is not None:
            self._stop.set()
            runner, self._runner = self._runner, None
            await runner

    def _open(self) -> Client:
        if self._client is None:
            raise RuntimeError("BuiltinTools is not open; use `async with BuiltinTools(...)`")
        return self._client

    def all(self) -> list[Tool]:
        """Every built-in tool, whatever the role, sorted by name."""
        self._open()
        return sorted(self._tools.values(), key=lambda t: t.name)

    def allowed(self, caller: Caller) -> list[Tool]:
        """The tools `caller`'s role allows, sorted by name."""
        self._open()
        return sorted(
            (t for t in self._tools.values() if t.permission and caller.can(t.permission)),
            key=lambda t: t.name,
        )

    async def definitions(self, caller: Caller) -> list[dict[str, Any]]:
        """Anthropic tool params for the tools `caller`'s role allows, sorted by name (fresh dicts each time)."""
        return [
            {"name": t.name, "description": t.description, "input_schema": copy.deepcopy(t.input_schema)}
            for t in self.allowed(caller)
        ]

    def refusal(self, caller: Caller, name: str, arguments: object) -> ToolResult | None:
        """Why the call cannot run at all (an unknown tool, one the role does not permit, arguments that
        are not the tool's), or None. A refused call is never put to the user for approval."""
        listed = self._tools.get(name)
        if listed is None:
            available = ", ".join(t.name for t in self.allowed(caller)) or "none"
            return ToolResult(True, f"Unknown tool {name!r}. Available tools: {available}.")
        assert listed.permission is not None
        if not caller.can(listed.permission):
            return ToolResult(True, not_permitted(caller, name, listed.permission), status="not_permitted")
        problem = argument_problem(listed, arguments)
        if problem is None and name in self._arguments:
            try:
                self._arguments[name].model_validate(arguments)
            except ValidationError as exc:
                problem = f"Invalid arguments for {name}: " + "; ".join(
                    f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                    for error in exc.errors(include_url=False, include_input=False)
                )
        return None if problem is None else ToolResult(True, problem)

    def annotations(self, name: str) -> ToolAnnotations | None:
        """The tool's MCP annotations (None for an unknown tool)."""
        listed = self._tools.get(name)
        return None if listed is None else listed.annotations

    async def summary(self, caller: Caller, name: str, arguments: dict[str, Any]) -> str:
        """What a call would do, in plain words built from the tool, its input and the current data."""
        describe = self._summaries.get(name)
        if describe is not None:
            with contextlib.suppress(Unavailable):
                return await describe(self._data, caller, arguments)
        return generic_summary(name.replace("_", " ").capitalize(), arguments)

    async def call(self, caller: Caller, name: str, arguments: object) -> ToolResult:
        """Run tool `name` for `caller`; any problem comes back as an `is_error` result, never an exception.
        The role is checked again here, at the moment the call runs."""
        client = self._open()
        refusal = self.refusal(caller, name, arguments)
        if refusal is not None:
            return refusal
        listed = self._tools[name]
        assert isinstance(arguments, dict)
        try:
            with anyio.fail_after(self.timeout_seconds):
                result = await client.call_tool(name, arguments, meta=caller_meta(caller))
        except TimeoutError:
            note = "" if listed.read_only else " Check whether the change was applied before retrying."
            return ToolResult(True, f"{name} timed out after {self.timeout_seconds:g} s.{note}")
        except MCPError as exc:
            logger.warning("tool %s failed with a protocol error: %s", name, exc)
            return ToolResult(True, f"{name} failed: {exc}")
        except Exception as exc:
            logger.exception("tool %s failed in the client", name)
            return ToolResult(
                True, f"{name} failed unexpectedly ({type(exc).__name__}); it may not have run."
            )
        text = "\n".join(block.text for block in result.content if isinstance(block, TextContent))
        if result.is_error:
            # Pydantic's help links cost tokens and mean nothing to the user.
            text = "\n".join(line for line in text.splitlines() if "errors.pydantic.dev" not in line)
        return capped(result.is_error, text, self.max_result_chars)

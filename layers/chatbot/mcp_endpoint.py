"""`POST /mcp`: the built-in tools served to MCP clients (Claude Desktop, IDEs, the MCP Inspector) by the `mcp`
SDK's Streamable HTTP server, stateless with JSON responses (one request in, one response out: it fits
Lambda), behind the same bearer token as the chat.

Before the SDK sees a request, `McpEndpoint.__call__` refuses a foreign `Origin` (403), a missing or bad token
(401 with a `WWW-Authenticate` naming the protected-resource metadata) and a caller without a role in the organization (403),
and puts the server-side `Caller` in the request's scope. The tools find it there (`caller_in`), never in
anything the client sends: the in-process `_meta` caller is not honoured here. Inside the SDK, `_guard`
filters `tools/list` to the caller's role, and for `tools/call` counts the call against the caller's rate,
checks the permission again, bounds the call's time and writes the audit record (`via: "mcp"`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp import MCPError
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import INTERNAL_ERROR, CallToolResult, ListToolsResult, TextContent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from .audit import Status
from .auth import bearer_token
from .errors import Forbidden, RateLimited, Unauthorized, Unavailable
from .observability import RequestMetrics, log_context
from .permissions import Caller
from .request import MAX_BODY_BYTES, read_body
from .services import Services
from .tools import PERMISSION_META_KEY, build_server, not_permitted

PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource"
CALLER_STATE_KEY = "chatbot.mcp.caller"
RATE_LIMITED_CODE = -32029
"""The JSON-RPC error code of a call over the rate (implementation-defined range; "429" in it)."""


def base_url(request: Request) -> str:
    """This server's own origin as the client addressed it (the scheme a proxy in front reports, if any)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else request.url.scheme
    return f"{scheme}://{request.headers.get('host', request.url.netloc)}"


def origin_allowed(request: Request, allowed: list[str]) -> bool:
    """Whether the request's `Origin` (if any) is one of `allowed` (`*` allows all) or this server's own.
    Browsers send `Origin` on cross-site requests; a page of another site must not drive the tools."""
    origin = request.headers.get("origin")
    if origin is None or "*" in allowed or origin.rstrip("/") in allowed:
        return True
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def caller_in(request: object) -> Caller | None:
    """The caller `McpEndpoint` authenticated for this HTTP request, or None."""
    if not isinstance(request, Request):
        return None
    caller = request.scope.get("state", {}).get(CALLER_STATE_KEY)
    return caller if isinstance(caller, Caller) else None


def _caller_of(ctx: Context) -> Caller:
    caller = caller_in(ctx.request_context.request)
    if caller is None:
        raise ToolError("No caller identity on this request.")
    return caller


def _error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


class McpEndpoint:
    """The ASGI app behind `POST /mcp`. Created once in the app's lifespan; `run()` holds the SDK's session
    manager open."""

    def __init__(self, services: Services) -> None:
        self._services = services
        settings = services.settings
        self._allowed_origins = settings.cors_origins
        self._issuer = settings.auth_issuer
        self._timeout = settings.chatbot_tool_timeout_seconds
        self.server: MCPServer = build_server(services.appdata, caller_of=_caller_of)
        self.server.middleware.append(self._guard)
        # Origin and Host are checked before the SDK (our error table, our allowed origins); the SDK's own
        # check, which knows only fixed host names, would refuse the function URL.
        self.server.streamable_http_app(
            json_response=True,
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            # The API's own cap (checked first, in `__call__`): a call's input fits its audit record whole.
            max_request_body_size=MAX_BODY_BYTES,
        )
        self._manager = self.server.session_manager
        self._permissions: dict[str, str] = {}
        self._read_only_tools: set[str] = set()

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Read each tool's permission once, then serve requests until the app stops."""
        for tool in await self.server.list_tools():
            permission = (tool.meta or {}).get(PERMISSION_META_KEY)
            if not isinstance(permission, str):
                raise RuntimeError(f"tool {tool.name} declares no permission")
            self._permissions[tool.name] = permission
            if tool.annotations is not None and tool.annotations.read_only_hint:
                self._read_only_tools.add(tool.name)
        async with self._manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        if not origin_allowed(request, self._allowed_origins):
            raise Forbidden("This origin may not use the MCP endpoint; add it to CORS_ALLOW_ORIGINS.")
        services = self._services
        try:
            identity = await services.verifier.verify(bearer_token(request.headers.get("authorization")))
        except Unauthorized as exc:
            # RFC 6750 and 9728: say the token was refused (if one was sent) and where to learn how to get one.
            invalid = 'error="invalid_token", ' if request.headers.get("authorization") else ""
            challenge = f'Bearer {invalid}resource_metadata="{base_url(request)}{METADATA_PATH}"'
            raise Unauthorized(exc.message, challenge=challenge) from exc
        # The API's size cap and its 413, before the SDK reads the body (which it then gets from here).
        body = await read_body(request)
        caller = await services.callers.of(identity)
        scope.setdefault("state", {})[CALLER_STATE_KEY] = caller
        replayed = False

        async def receive_body() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        with log_context(user_id=caller.user_id, org_id=caller.org_id):
            await self._manager.handle_request(scope, receive_body, send)

    async def _guard(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """The SDK middleware: the role filters the listing; a call is counted, re-checked and audited."""
        if ctx.method == "tools/list":
            caller = caller_in(ctx.request)
            if caller is None:
                raise MCPError(INTERNAL_ERROR, "No caller identity on this request.")
            # The handler's result, as a model or (on some protocol versions) already a dict.
            listed = ListToolsResult.model_validate(await call_next(ctx))
            tools = [t for t in listed.tools if caller.can(self._permissions.get(t.name, "-"))]
            return listed.model_copy(update={"tools": tools})
        if ctx.method == "tools/call":
            return await self._call(ctx, call_next)
        return await call_next(ctx)

    async def _call(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        caller = caller_in(ctx.request)
        if caller is None:
            raise MCPError(INTERNAL_ERROR, "No caller identity on this request.")
        try:
            await self._services.mcp_rate.take(caller.user_id)
        except RateLimited as exc:
            RequestMetrics.refusal(exc.code)
            raise MCPError(
                RATE_LIMITED_CODE,
                exc.message,
                {"retry_after_seconds": exc.retry_after, "limit_per_minute": exc.limit},
            ) from exc
        except Unavailable as exc:
            raise MCPError(INTERNAL_ERROR, exc.message) from exc
        params = ctx.params or {}
        name, arguments = params.get("name"), params.get("arguments") or {}
        if not isinstance(name, str):
            return await call_next(ctx)  # not a tool call at all: the SDK says what is wrong with it
        permission = self._permissions.get(name)
        status: Status
        if permission is not None and not caller.can(permission):
            result, status = _error(not_permitted(caller, name, permission)), "not_permitted"
        else:
            result, status = await self._run(ctx, call_next, caller, name, arguments)
        await self._record(caller, name, arguments, status, _text(result))
        return result

    async def _run(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
        caller: Caller,
        name: str,
        arguments: Any,
    ) -> tuple[CallToolResult, Status]:
        """Run the call through the SDK within the tool timeout: its result and the audit status."""
        outcome: HandlerResult = None
        failure: MCPError | None = None
        with anyio.move_on_after(self._timeout):
            try:
                outcome = await call_next(ctx)
            except MCPError as exc:
                failure = exc
        if failure is not None:
            await self._record(caller, name, arguments, "error", failure.error.message)
            raise failure
        if outcome is None:
            note = "" if self._read_only(name) else " Check whether the change was applied before retrying."
            return _error(f"{name} timed out after {self._timeout:g} s.{note}"), "error"
        result = CallToolResult.model_validate(outcome)
        return result, "error" if result.is_error else "ok"

    def _read_only(self, name: str) -> bool:
        return name in self._read_only_tools

    async def _record(self, caller: Caller, tool: str, arguments: Any, status: Status, text: str) -> None:
        await self._services.audit.record(
            caller.org_id,
            user_id=caller.user_id,
            tool=tool,
            input=arguments,
            status=status,
            result=text,
            via="mcp",
        )

    async def resource_metadata(self, request: Request) -> Response:
        """The RFC 9728 protected-resource metadata: what `/mcp` is and where its tokens come from."""
        base = base_url(request)
        document: dict[str, Any] = {
            "resource": base + PATH,
            "bearer_methods_supported": ["header"],
            "resource_name": "Chatbot built-in tools (MCP)",
        }
        if self._issuer:
            document["authorization_servers"] = [self._issuer]
        return JSONResponse(document, headers={"cache-control": "max-age=3600"})


def endpoint(request_scope: Scope) -> McpEndpoint:
    """The app's one `McpEndpoint` (made in the lifespan)."""
    found: McpEndpoint = request_scope["app"].state.mcp
    return found


class _Serve:
    """`POST /mcp`, routed to the app's endpoint (an ASGI callable, so Starlette hands over the raw call)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await endpoint(scope)(scope, receive, send)


serve = _Serve()


async def metadata(request: Request) -> Response:
    """`GET /.well-known/oauth-protected-resource` (and `.../mcp`, the path RFC 9728 derives from `/mcp`)."""
    return await endpoint(request.scope).resource_metadata(request)

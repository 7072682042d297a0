"""Remote MCP servers (`CHATBOT_MCP_SERVERS`): the host application's own tools, listed and called over
Streamable HTTP with the mcp SDK's client.

Every listing and every call is one short session on the process's shared connection pool, bounded as a
whole by the server's `timeout_seconds`. Nothing a remote server does can fail a chat: a server that cannot
be listed in time is left out of that request (a warning and a metric) and skipped for the next
`LEFT_OUT_SECONDS`; a call that fails, hangs, answers garbage or too much becomes an `is_error` result.

The caller's own bearer token goes only to servers whose `auth` is `forward`, on the session's own HTTP
client (never shared between users, never logged); a server with `auth: none` never receives it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import (
    PARSE_ERROR,
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    DiscoverResult,
    EmbeddedResource,
    ImageContent,
    Implementation,
    ResourceLink,
    TextContent,
)
from mcp.types import Tool as McpTool
from pydantic import ValidationError

from ..observability import RequestMetrics
from ..settings import McpServerConfig
from .tool import PERMISSION_META_KEY, Tool, ToolResult, compact_schema

logger = logging.getLogger(__name__)

LEFT_OUT_SECONDS = 30.0
"""How long a server that could not be listed is skipped, instead of making every request wait for it."""
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
"""A response body longer than this is cut off: the call fails instead of filling memory."""
MAX_LISTING_PAGES = 10
MAX_TOOLS_PER_SERVER = 128
MAX_DESCRIPTION_CHARS = 2000
MAX_SCHEMA_CHARS = 16_000
"""A tool whose input schema is longer (as JSON) is left out: every request would pay for it in tokens."""
MAX_CACHED_LISTINGS = 10_000
PERMISSION = re.compile(r"[A-Za-z0-9_.-]{1,64}:[A-Za-z0-9_.-]{1,64}")
CLIENT_INFO = Implementation(name="chatbot", version="1")


class ResponseTooLarge(httpx2.StreamError):
    """A remote server sent a body larger than `MAX_RESPONSE_BYTES`."""


class _Capped(httpx2.AsyncByteStream):
    """A response body that stops at `limit` bytes."""

    def __init__(self, stream: httpx2.AsyncByteStream, limit: int, exceeded: Callable[[], None]) -> None:
        self._stream, self._limit, self._exceeded = stream, limit, exceeded

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                self._exceeded()
                raise ResponseTooLarge(f"the response is larger than {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class _Borrowed(httpx2.AsyncBaseTransport):
    """The shared connection pool lent to one session: closing the session's client leaves the pool open,
    and each response body is capped."""

    def __init__(self, pool: httpx2.AsyncBaseTransport) -> None:
        self._pool = pool
        self.too_large = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._pool.handle_async_request(request)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _Capped(response.stream, MAX_RESPONSE_BYTES, self._mark)
        return response

    def _mark(self) -> None:
        self.too_large = True

    async def aclose(self) -> None:
        """The pool belongs to the process, not to this session."""


@dataclass(frozen=True)
class Listing:
    """The remote servers' tools for one request, by server in configuration order; None for a server left
    out of this request."""

    tools: dict[str, list[Tool] | None]

    @property
    def left_out(self) -> frozenset[str]:
        """The servers left out of this request."""
        return frozenset(name for name, tools in self.tools.items() if tools is None)


def _size(data: str) -> str:
    """The size of base64 `data` once decoded, in words."""
    size = len(data) * 3 // 4
    return f"{size} bytes" if size < 1024 else f"{size / 1024:.1f} KB"


def result_text(result: CallToolResult) -> str:
    """A call's result as text for the model: its text blocks as they are, anything else (images, audio,
    resources) as a short description; structured content as JSON when there is no text."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent):
            parts.append(f"[image: {block.mime_type}, {_size(block.data)}; not shown to the assistant]")
        elif isinstance(block, AudioContent):
            parts.append(f"[audio: {block.mime_type}, {_size(block.data)}; not shown to the assistant]")
        elif isinstance(block, ResourceLink):
            kind = f", {block.mime_type}" if block.mime_type else ""
            parts.append(f"[link to a resource: {block.name} <{block.uri}>{kind}]")
        elif isinstance(block, EmbeddedResource):
            resource = block.resource
            kind = f", {resource.mime_type}" if resource.mime_type else ""
            size = (
                _size(resource.blob)
                if isinstance(resource, BlobResourceContents)
                else f"{len(resource.text)} characters of text"
            )
            parts.append(f"[resource <{resource.uri}>{kind}, {size}; not shown to the assistant]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(parts)


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside `exc`, exception groups unwrapped (the SDK's task groups wrap them)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _why(exc: BaseException, borrowed: _Borrowed) -> str:
    """What went wrong with a session, in words for a log line or the model."""
    leaves = _leaves(exc)
    if borrowed.too_large or any(isinstance(leaf, ResponseTooLarge) for leaf in leaves):
        return f"its response was larger than {MAX_RESPONSE_BYTES // 1024} KB"
    for leaf in leaves:
        if isinstance(leaf, MCPError) and leaf.code == PARSE_ERROR:
            return "it sent a malformed answer"
        if isinstance(leaf, MCPError):
            first_line = (leaf.message.splitlines() or [""])[0]
            return f"it answered with an error: {first_line[:200]}"
        if isinstance(leaf, httpx2.TransportError | OSError):
            return "it could not be reached"
        if isinstance(leaf, ValidationError | ValueError):
            return "it sent a malformed answer"
    return f"the session failed ({type(leaves[0]).__name__})"


class RemoteServer:
    """One configured remote MCP server: its tools (listed, cached per `list_ttl_seconds`, per user for a
    `forward` server) and calls to them. Created once per process."""

    def __init__(
        self,
        config: McpServerConfig,
        pool: httpx2.AsyncBaseTransport,
        *,
        list_ttl_seconds: float = 60,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.name = config.name
        self._pool = pool
        self._ttl = list_ttl_seconds
        self._clock = clock
        self._listings: dict[str, tuple[float, list[Tool]]] = {}
        self._skipped_until: dict[str, float] = {}
        # How the last session connected: a modern server's discovery is reused (no handshake), a legacy
        # one is asked for the initialize handshake directly (no failed probe first).
        self._mode = "auto"
        self._discovered: DiscoverResult | None = None

    @property
    def forward(self) -> bool:
        """Whether the caller's own bearer token is sent to it."""
        return self.config.auth == "forward"

    def _key(self, user_key: str) -> str:
        return user_key if self.forward else ""

    @asynccontextmanager
    async def _session(self, token: str | None, borrowed: _Borrowed) -> AsyncIterator[Client]:
        headers = {"authorization": f"Bearer {token}"} if self.forward and token else {}
        timeout = httpx2.Timeout(self.config.timeout_seconds)
        async with (
            httpx2.AsyncClient(transport=borrowed, headers=headers, timeout=timeout) as http,
            Client(
                streamable_http_client(self.config.url, http_client=http),
                mode=self._mode,
                prior_discover=self._discovered,
                client_info=CLIENT_INFO,
                cache=None,  # our own listing cache spans sessions; the SDK's lives and dies with one
            ) as client,
        ):
            discovered = client.session.discover_result
            self._mode = client.protocol_version if discovered is not None else "legacy"
            self._discovered = discovered
            yield client

    def _forget_era(self) -> None:
        self._mode, self._discovered = "auto", None

    async def tools(self, user_key: str, token: str | None) -> list[Tool] | None:
        """The server's tools for this user (from the cache while fresh), or None when it is left out of
        this request: skipped after a recent failure, or not listed within its timeout."""
        now = self._clock()
        key = self._key(user_key)
        if max(self._skipped_until.get("", 0.0), self._skipped_until.get(key, 0.0)) > now:
            return None
        cached = self._listings.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        borrowed = _Borrowed(self._pool)
        try:
            with anyio.fail_after(self.config.timeout_seconds):
                listed = await self._list(token, borrowed)
        except TimeoutError:
            self._left_out("", f"it was not listed within {self.config.timeout_seconds:g} s")
            return None
        # A remote server is outside our control: whatever goes wrong in its session (the SDK's task groups
        # may raise anything its transport met) leaves it out of this request and never fails the chat.
        except Exception as exc:  # noqa: BLE001 (see above)
            # The request itself was stopped (refused at admission, cancelled): that says nothing about the
            # server, whatever the SDK made of the cancellation.
            await anyio.lowlevel.checkpoint_if_cancelled()
            why = _why(exc, borrowed)
            # Refusing one user (a forwarded token it rejects) is not being down for everyone.
            scope = key if any(isinstance(leaf, MCPError) for leaf in _leaves(exc)) else ""
            self._left_out(scope, why)
            return None
        tools = [tool for tool in (self._tool(t) for t in listed[:MAX_TOOLS_PER_SERVER]) if tool is not None]
        if len(self._listings) >= MAX_CACHED_LISTINGS:
            self._listings = {k: v for k, v in self._listings.items() if v[0] > now}
            while len(self._listings) >= MAX_CACHED_LISTINGS:
                del self._listings[next(iter(self._listings))]
        self._listings[key] = (now + self._ttl, tools)
        return tools

    async def _list(self, token: str | None, borrowed: _Borrowed) -> list[McpTool]:
        listed: list[McpTool] = []
        async with self._session(token, borrowed) as client:
            cursor: str | None = None
            for _ in range(MAX_LISTING_PAGES):
                page = await client.list_tools(cursor=cursor)
                listed.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None or len(listed) >= MAX_TOOLS_PER_SERVER:
                    break
        return listed

    def _left_out(self, scope: str, why: str) -> None:
        self._forget_era()
        self._skipped_until[scope] = self._clock() + LEFT_OUT_SECONDS
        logger.warning(
            "MCP server %s left out of this request for %g s: %s", self.name, LEFT_OUT_SECONDS, why[:300]
        )
        RequestMetrics.event("McpServerLeftOut")

    def _tool(self, listed: McpTool) -> Tool | None:
        """A listed tool as the chatbot offers it, or None (with a warning) when it cannot be offered."""
        permission = (listed.meta or {}).get(PERMISSION_META_KEY)
        if permission is not None and not (isinstance(permission, str) and PERMISSION.fullmatch(permission)):
            logger.warning(
                "MCP server %s: tool %r left out: its %s is not `resource:action`",
                self.name,
                listed.name[:100],
                PERMISSION_META_KEY,
            )
            return None
        schema = listed.input_schema
        if not isinstance(schema, dict) or schema.get("type") != "object":
            logger.warning(
                "MCP server %s: tool %r left out: its input schema is not an object",
                self.name,
                listed.name[:100],
            )
            return None
        if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
            logger.warning(
                "MCP server %s: tool %r left out: its input schema is over %d characters",
                self.name,
                listed.name[:100],
                MAX_SCHEMA_CHARS,
            )
            return None
        title = listed.title or (listed.annotations.title if listed.annotations else None)
        return Tool(
            name=listed.name,
            description=(listed.description or title or listed.name)[:MAX_DESCRIPTION_CHARS],
            input_schema=compact_schema(schema),
            annotations=listed.annotations,
            permission=permission,
            source=self.name,
            remote_name=listed.name,
            title=title,
        )

    async def call(self, tool: Tool, arguments: dict[str, Any], token: str | None) -> ToolResult:
        """Call `tool` on this server; any problem comes back as an `is_error` result (not yet size-capped)."""
        borrowed = _Borrowed(self._pool)
        note = "" if tool.read_only else " Check whether the change was applied before retrying."
        try:
            with anyio.fail_after(self.config.timeout_seconds):
                async with self._session(token, borrowed) as client:
                    result = await client.call_tool(tool.remote_name, arguments)
        except TimeoutError:
            return ToolResult(True, f"{tool.name} timed out after {self.config.timeout_seconds:g} s.{note}")
        # As for the listing: nothing a remote server does may end the request.
        except Exception as exc:  # noqa: BLE001 (see above)
            await anyio.lowlevel.checkpoint_if_cancelled()
            why = _why(exc, borrowed)
            self._forget_era()
            logger.warning(
                "MCP server %s: call of %s failed: %s", self.name, tool.remote_name[:100], why[:300]
            )
            return ToolResult(True, f"{tool.name} failed: {why}.{note}")
        return ToolResult(result.is_error, result_text(result))

"""The tools of one request: the built-ins and the remote tools listed for the caller, under the names the
model sees, and everything the agent loop asks of them (definitions, refusal, approval, summary, call).

Names: a remote tool is offered as `<server>_<tool>`, characters outside `[a-zA-Z0-9_-]` becoming `_`; a
name over 64 characters (Anthropic's limit) is cut and ends with `_` and 8 hex digits of a hash of the
server and tool names, so it stays the same from request to request. Names are given in a fixed order (the
built-ins, then each server in `CHATBOT_MCP_SERVERS` order, its tools in listing order) before any
permission filter, and a name already given is left out with a warning: every role sees the same tool
under a name, and a remote tool can never shadow a built-in.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from mcp.types import ToolAnnotations

from ..approval import generic_summary
from ..permissions import Caller
from .builtin import BuiltinTools
from .remote import Listing, RemoteServer
from .tool import BUILTIN, Tool, ToolResult, argument_problem, capped, not_permitted

logger = logging.getLogger(__name__)

MAX_NAME_CHARS = 64
UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def offered_name(server: str, tool: str) -> str:
    """The name the model sees for `tool` of `server`: `<server>_<tool>`, made safe and short enough."""
    name = UNSAFE.sub("_", f"{server}_{tool}")
    if len(name) <= MAX_NAME_CHARS:
        return name
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME_CHARS - 9]}_{digest}"


def named(
    builtin: list[Tool], listing: Listing, warned: set[tuple[str, str]] | None = None
) -> dict[str, Tool]:
    """Every tool of the request under its offered name, clashes left out (each warned about once per
    `warned` set)."""
    tools = {tool.name: tool for tool in builtin}
    for server, listed in listing.tools.items():
        for tool in listed or ():
            name = offered_name(server, tool.remote_name)
            if name in tools:
                if warned is None or (server, tool.remote_name) not in warned:
                    logger.warning(
                        "MCP server %s: tool %r left out: its name %s is taken by a tool offered before it",
                        server,
                        tool.remote_name[:100],
                        name,
                    )
                    if warned is not None:
                        warned.add((server, tool.remote_name))
                continue
            tools[name] = dataclasses.replace(tool, name=name)
    return tools


class Catalog:
    """The tools offered to one caller in one request, and their calls. The caller's bearer token is kept
    only to be forwarded to the servers marked `forward`."""

    def __init__(
        self,
        caller: Caller,
        tools: Mapping[str, Tool],
        *,
        builtin: BuiltinTools | None,
        servers: Mapping[str, RemoteServer],
        token: str | None,
        left_out: frozenset[str] = frozenset(),
        max_result_chars: int = 20_000,
    ) -> None:
        self.caller = caller
        self._tools = dict(tools)
        self._builtin = builtin
        self._servers = servers
        self._token = token
        self.left_out = left_out
        self.max_result_chars = max_result_chars

    def __repr__(self) -> str:
        return f"Catalog({self.caller.user_id!r}, {len(self._tools)} tools)"

    def offered(self) -> list[Tool]:
        """The tools the caller's role allows, sorted by name."""
        return sorted(
            (t for t in self._tools.values() if t.permission is None or self.caller.can(t.permission)),
            key=lambda t: t.name,
        )

    def definitions(self) -> list[dict[str, Any]]:
        """Anthropic tool params of the offered tools, sorted by name (fresh dicts each time)."""
        return [
            {"name": t.name, "description": t.description, "input_schema": copy.deepcopy(t.input_schema)}
            for t in self.offered()
        ]

    def tool(self, name: str) -> Tool | None:
        """The tool offered as `name`, whatever the role (None if there is none in this request)."""
        return self._tools.get(name)

    def refusal(self, name: str, arguments: object) -> ToolResult | None:
        """Why the call cannot run at all (an unknown or unavailable tool, one the role does not permit,
        arguments that are not the tool's), or None. A refused call is never put to the user for approval."""
        tool = self._tools.get(name)
        if tool is None:
            away = sorted(server for server in self.left_out if name.startswith(f"{server}_"))
            if away:
                return ToolResult(
                    True, f"{name} is unavailable right now: its server {away[0]} did not answer. Try later."
                )
            available = ", ".join(t.name for t in self.offered()) or "none"
            return ToolResult(True, f"Unknown tool {name!r}. Available tools: {available}.")
        if tool.permission is not None and not self.caller.can(tool.permission):
            return ToolResult(True, not_permitted(self.caller, name, tool.permission), status="not_permitted")
        if tool.source == BUILTIN and self._builtin is not None:
            return self._builtin.refusal(self.caller, name, arguments)
        # A remote tool's own server validates its arguments; only an object can be sent at all, and a
        # schema that closes its properties tells us the names it takes.
        return _refused(
            argument_problem(tool, arguments, closed=tool.input_schema.get("additionalProperties") is False)
        )

    def annotations(self, name: str) -> ToolAnnotations | None:
        """The tool's MCP annotations (None for an unknown tool, or one its server did not annotate)."""
        tool = self._tools.get(name)
        return None if tool is None else tool.annotations

    async def summary(self, name: str, arguments: dict[str, Any]) -> str:
        """What a call would do, in plain words: a built-in's from its input and the current data; a remote
        tool's from its title (or name), its server and its input."""
        tool = self._tools.get(name)
        if tool is not None and tool.source != BUILTIN:
            return generic_summary(tool.title or tool.remote_name, arguments, origin=tool.source)
        if self._builtin is None:
            return generic_summary(name, arguments)
        return await self._builtin.summary(self.caller, name, arguments)

    async def call(self, name: str, arguments: object) -> ToolResult:
        """Run tool `name`; any problem comes back as an `is_error` result, never an exception. The role is
        checked again here, at the moment the call runs."""
        refusal = self.refusal(name, arguments)
        if refusal is not None:
            return refusal
        tool = self._tools[name]
        if tool.source == BUILTIN:
            assert self._builtin is not None
            return await self._builtin.call(self.caller, name, arguments)
        assert isinstance(arguments, dict)
        result = await self._servers[tool.source].call(tool, arguments, self._token)
        return capped(result.is_error, result.content, self.max_result_chars)


def _refused(problem: str | None) -> ToolResult | None:
    return None if problem is None else ToolResult(True, problem)

"""A remote MCP server for `make bench`: a host app's handful of tools over Streamable HTTP (stateless,
JSON responses), each request answered after `--latency` seconds (the network between the function and
the host app). `--legacy` makes it answer `server/discover` as a pre-2026 server does (method not found),
so clients connect with the initialize handshake.

    python -m bench.mcp_remote --port N [--latency 0.001] [--legacy]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from starlette.types import ASGIApp, Message, Receive, Scope, Send

READ = ToolAnnotations(read_only_hint=True, destructive_hint=False)


def build_server() -> MCPServer:
    server: MCPServer = MCPServer("bench-host")
    for name in ("project_list", "project_get", "task_list", "task_get", "task_search"):

        def read(query: str = "", limit: int = 20) -> str:
            return "[]"

        server.add_tool(
            read,
            name=name,
            description=f"{name.replace('_', ' ')} of the caller's organization.",
            annotations=READ,
        )

    def task_create(project: str, title: str, assignee: str | None = None) -> str:
        return "{}"

    server.add_tool(
        task_create, description="Add a task to a project.", meta={"chatbot.app/permission": "member:read"}
    )
    return server


class Delayed:
    """Answers each request after `latency` seconds; with `legacy`, refuses `server/discover`."""

    def __init__(self, app: ASGIApp, latency: float, legacy: bool) -> None:
        self.app, self.latency, self.legacy = app, latency, legacy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/healthz":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await asyncio.sleep(self.latency)
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = json.loads(body) if body else {}
        if self.legacy and isinstance(request, dict) and request.get("method") == "server/discover":
            error = {
                "jsonrpc": "2.0",
                "id": request.get("id"),
                "error": {"code": -32601, "message": "Method not found"},
            }
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(error).encode()})
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.001)
    parser.add_argument("--legacy", action="store_true")
    args = parser.parse_args()
    app = build_server().streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(
        Delayed(app, args.latency, args.legacy), host="127.0.0.1", port=args.port, log_level="warning"
    )


if __name__ == "__main__":
    main()

"""A remote MCP server for tests of the chatbot's MCP client: the real mcp SDK server (Streamable HTTP,
stateless, JSON responses) on a real socket, in a background thread, that records what it receives and can
be made to misbehave.

    with FakeMcpServer() as server:
        server.misbehave("tools/call", "hang")       # or "garbage", "huge", "error"; method "*" for any
        ... the client under test calls server.url ...
        assert server.authorizations == [None, None]  # the Authorization header of each request

Tools: `echo` (read-only), `note_add` (a change, unannotated), `picture` (an image and an embedded
resource), `erase` (destructive, with the permission meta `member:delete`), `bad_permission` (malformed
permission meta), `a.b` (a name with a character Anthropic refuses) and one with a 70-character name.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from types import TracebackType
from typing import Any, Literal, Self

import anyio.to_thread
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import EmbeddedResource, ImageContent, TextContent, TextResourceContents, ToolAnnotations
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Misbehaviour = Literal["hang", "garbage", "huge", "error"]
LONG_NAME = "x" * 70
HUGE_BYTES = 3 * 1024 * 1024
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
STARTUP_SECONDS = 20


def build_server(notes: list[str]) -> MCPServer:
    """The fake's tools."""
    server: MCPServer = MCPServer("fake")

    @server.tool(annotations=READ, structured_output=False)
    def echo(text: str) -> str:
        """Say `text` back."""
        return text

    @server.tool(title="Add a note", structured_output=False)
    def note_add(text: str) -> str:
        """Keep a note."""
        notes.append(text)
        return f"noted: {text}"

    @server.tool(annotations=READ, structured_output=False)
    def picture() -> list[Any]:
        """A picture and a document."""
        png = base64.b64encode(b"\x89PNG" + b"\0" * 2044).decode()
        return [
            TextContent(type="text", text="Here it is."),
            ImageContent(type="image", data=png, mime_type="image/png"),
            EmbeddedResource(
                type="resource",
                resource=TextResourceContents(
                    uri="memo://1", mime_type="text/plain", text="secret plans " * 100
                ),
            ),
        ]

    @server.tool(
        annotations=DESTRUCTIVE, meta={"chatbot.app/permission": "member:delete"}, structured_output=False
    )
    def erase(what: str) -> str:
        """Erase something."""
        return f"erased {what}"

    @server.tool(meta={"chatbot.app/permission": "everything"}, structured_output=False)
    def bad_permission() -> str:
        """Declares a permission that is not resource:action."""
        return "never offered"

    @server.tool(name="a.b", annotations=READ, structured_output=False)
    def dotted() -> str:
        """A name with a dot."""
        return "dotted"

    @server.tool(name=LONG_NAME, annotations=READ, structured_output=False)
    def long_named() -> str:
        """A name over Anthropic's limit once prefixed."""
        return "long"

    return server


class _Recorder:
    """ASGI middleware: records each request's Authorization header and JSON-RPC method, and misbehaves
    for the methods it is told to."""

    def __init__(self, app: ASGIApp, fake: FakeMcpServer) -> None:
        self.app, self.fake = app, fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            method = json.loads(body).get("method") if body else None
        except (ValueError, AttributeError):
            method = None
        self.fake.record(headers.get("authorization"), method)
        behaviour = self.fake.behaviour_for(method)
        if behaviour == "hang":
            # Until the fake stops (bounded; abandoned if the server shuts down first).
            await anyio.to_thread.run_sync(self.fake.released.wait, 30, abandon_on_cancel=True)
            return
        if behaviour in ("garbage", "huge", "error"):
            status, payload = {
                "garbage": (200, b"{this is not json"),
                "huge": (
                    200,
                    b'{"jsonrpc": "2.0", "id": 1, "result": {"pad": "' + b"x" * HUGE_BYTES + b'"}}',
                ),
                "error": (500, b"upstream broke"),
            }[behaviour]
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class FakeMcpServer:
    """The fake served by uvicorn on 127.0.0.1 and an ephemeral port; `url` is its MCP endpoint."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.requests: list[tuple[str | None, str | None]] = []
        self._misbehaviour: dict[str, Misbehaviour] = {}
        self._lock = threading.Lock()
        self.released = threading.Event()
        app = build_server(self.notes).streamable_http_app(stateless_http=True, json_response=True)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        config = uvicorn.Config(
            _Recorder(app, self), log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def record(self, authorization: str | None, method: str | None) -> None:
        with self._lock:
            self.requests.append((authorization, method))

    @property
    def authorizations(self) -> list[str | None]:
        """The Authorization header of each request received, in order."""
        with self._lock:
            return [authorization for authorization, _ in self.requests]

    def methods(self) -> list[str | None]:
        """The JSON-RPC method of each request received (None for a GET or DELETE)."""
        with self._lock:
            return [method for _, method in self.requests]

    def misbehave(self, method: str, behaviour: Misbehaviour | None) -> None:
        """From now on answer requests of `method` (`"*"`: any) with `behaviour` (None: normally)."""
        with self._lock:
            if behaviour is None:
                self._misbehaviour.pop(method, None)
            else:
                self._misbehaviour[method] = behaviour

    def behaviour_for(self, method: str | None) -> Misbehaviour | None:
        with self._lock:
            return self._misbehaviour.get(method or "", self._misbehaviour.get("*"))

    def start(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake MCP server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.released.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

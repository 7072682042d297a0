"""A small local proxy that adds a bearer token: the MCP conformance suite cannot send one.

Every request is forwarded to the app as it came, `Host` and `Origin` included (so the suite's DNS-rebinding
scenario reaches the app's own checks), with `Authorization: Bearer <token>` added.
"""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn
from starlette.types import Message, Receive, Scope, Send

HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"}
STARTUP_SECONDS = 10


class TokenProxy:
    """The ASGI app that forwards to `target` (e.g. http://127.0.0.1:PORT) with the token added."""

    def __init__(self, target: str, token: str) -> None:
        self._target = target
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [
            (k, v)
            for k, v in scope["headers"]
            if k.lower() not in HOP_BY_HOP and k.lower() != b"authorization"
        ]
        headers.append((b"authorization", f"Bearer {self._token}".encode()))
        url = (
            self._target
            + scope["raw_path"].decode()
            + (b"?" + scope["query_string"] if scope["query_string"] else b"").decode()
        )
        async with httpx.AsyncClient(timeout=30) as client:
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                start: Message = {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP],
                }
                await send(start)
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                await response.aclose()


class RunningProxy:
    """`TokenProxy` under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, target: str, token: str) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(TokenProxy(target, token), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> RunningProxy:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the token proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

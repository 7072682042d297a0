"""End-to-end fixtures: the real app under uvicorn on a real socket, an embedded DynamoDB (moto server),
and the project's fake Anthropic API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from chatbot.app import create_app
from chatbot.settings import Settings
from moto.server import ThreadedMotoServer

from tests.e2e.sse import Stream, frames, read_stream
from tests.fakes.anthropic_api import FakeAnthropic

SECRET = "e2e-secret-e2e-secret-e2e-secret!"
STARTUP_SECONDS = 20
# How long the test server keeps an idle connection open. It must outlast every test client's own idle
# expiry (httpx: 5 s), so it is always the client that gives up an idle connection first. Were the two
# equal (uvicorn's default is also 5 s), a client could reuse a pooled connection at the very moment the
# server closes it for idling, and its request would meet "Server disconnected without sending a
# response" (docs/RELIABILITY.md, "Keep-alive"). The deployed function orders them the same way: run.sh
# keeps connections 120 s, the Lambda Web Adapter's client pools them 4 s.
SERVER_KEEP_ALIVE_SECONDS = 30.0


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """One moto server for the session; each live server gets its own freshly seeded tables."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


class LiveServer:
    """The app served by uvicorn in a background thread, with helpers to call it as a client would."""

    def __init__(
        self,
        settings: Settings,
        *,
        keep_alive_seconds: float = SERVER_KEEP_ALIVE_SECONDS,
        tracing: Any = None,
    ) -> None:
        self.settings = settings
        self.app = create_app(settings, tracing)
        # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (see tests/fakes/anthropic_api.py).
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=keep_alive_seconds,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the app did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    @property
    def services(self) -> Any:
        return self.app.state.services

    def token(self, user_id: str = "user_alice", org_id: str = "org_acme", **claims: Any) -> str:
        payload = {"sub": user_id, "org_id": org_id, "exp": int(time.time()) + 600, **claims}
        return jwt.encode(payload, SECRET, algorithm="HS256")

    def client(self, timeout: float = 30.0, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=httpx.Timeout(timeout), **kwargs)

    def auth(
        self, token: str | None = None, user: str = "user_alice", org: str = "org_acme"
    ) -> dict[str, str]:
        """The Authorization header for `token` (or a fresh token for `user` in `org`)."""
        return {"authorization": f"Bearer {token or self.token(user, org)}"}

    @contextlib.asynccontextmanager
    async def streaming(
        self, text: str = "go", *, token: str | None = None
    ) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncIterator[dict[str, Any] | None]]]:
        """POST a message and hand over the client and its frames as they arrive (for cancel/disconnect tests)."""
        async with (
            self.client() as client,
            client.stream(
                "POST", "/api/chatbot/message", json={"message": text}, headers=self.auth(token)
            ) as response,
        ):
            yield client, frames(response)

    async def message(
        self,
        text: str = "hello",
        *,
        token: str | None = None,
        user: str = "user_alice",
        org: str = "org_acme",
        history: list[dict[str, str]] | None = None,
        json_body: Any = None,
        io_timeout: float = 30.0,
    ) -> Stream:
        """POST a message and read the whole answer (`io_timeout` bounds each connect, read and write)."""
        body = json_body if json_body is not None else {"message": text, "history": history or []}
        headers = {"authorization": f"Bearer {token or self.token(user, org)}"}
        async with (
            self.client(io_timeout) as client,
            client.stream("POST", "/api/chatbot/message", json=body, headers=headers) as r,
        ):
            return await read_stream(r)

    async def warm(self, user: str = "user_bob", within: float = 30.0) -> None:
        """Until one message by `user` is answered (a bounded wait), so the pools the app opens at its first
        request (Redis for the lock and the journal) are connected before the test's own requests. On a
        loaded machine a first connect can pass the lock's 1 s connect timeout, and the app then rightly
        fails closed (503), which says nothing about what a test of two instances checks."""
        deadline = time.monotonic() + within
        while (await self.message("warm up", user=user)).status != 200:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.base_url} answered no message within {within} s")
            await asyncio.sleep(0.1)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def start_server(dynamodb_endpoint: str, fake_anthropic: FakeAnthropic) -> Iterator[ServerFactory]:
    """Start a live server; keyword arguments override its settings (and its keep-alive timeout)."""
    servers: list[LiveServer] = []

    def start(
        *, keep_alive_seconds: float = SERVER_KEEP_ALIVE_SECONDS, tracing: Any = None, **overrides: Any
    ) -> LiveServer:
        suffix = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "chatbot_local": True,
            "anthropic_api_key": "test-key",
            "anthropic_base_url": fake_anthropic.base_url,
            "auth_jwt_secret": SECRET,
            "aws_endpoint_url_dynamodb": dynamodb_endpoint,
            "app_table": f"AppData-{suffix}",
            "chatbot_usage_table": f"ChatbotUsage-{suffix}",
            "chatbot_conversations_table": f"ChatbotConversations-{suffix}",
            "chatbot_audit_table": f"ChatbotAudit-{suffix}",
            **overrides,
        }
        server = LiveServer(
            Settings(**values), keep_alive_seconds=keep_alive_seconds, tracing=tracing
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def server(start_server: ServerFactory) -> LiveServer:
    """A live server with default settings."""
    return start_server()


async def wait_until(predicate: Callable[[], Any], within: float = 10.0, interval: float = 0.01) -> None:
    """Poll `predicate` until true, failing after `within` seconds (a bounded wait, not a sleep)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with server.client() as client:
        yield client

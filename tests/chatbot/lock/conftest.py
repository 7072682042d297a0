"""Fixtures for the request-lock tests: lock factories for both implementations, and a cuttable TCP proxy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from chatbot.lock import RequestLock
from chatbot.lock.memory import MemoryRequestLock
from chatbot.lock.redis import RedisRequestLock

MakeLock = Callable[..., RequestLock]


@pytest.fixture(params=["memory", "redis"])
async def make_lock(request: pytest.FixtureRequest) -> AsyncIterator[MakeLock]:
    """Build locks of one implementation (`make_lock(ttl_seconds=30)`); every lock is closed afterwards.

    For Redis, each call is a separate lock with its own pool, like another Lambda instance. For memory,
    every call returns the same lock: there is only one process to guard.
    """
    locks: list[RequestLock] = []
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")

        def make(ttl_seconds: float = 30, **timeouts: float) -> RequestLock:
            lock = RedisRequestLock(url, ttl_seconds, **timeouts)
            locks.append(lock)
            return lock

    else:

        def make(ttl_seconds: float = 30, **timeouts: float) -> RequestLock:
            if not locks:
                locks.append(MemoryRequestLock(ttl_seconds))
            return locks[0]

    yield make
    for lock in locks:
        await lock.aclose()


class TcpProxy:
    """Forwards a local port to a target; `stop` drops every connection and refuses new ones (an outage)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.replies_flowing = asyncio.Event()
        """Clear it to hold Redis's replies back (commands still reach Redis); set it to let them through."""
        self.replies_flowing.set()
        self.reply_held = asyncio.Event()
        """Set once a reply from Redis is being held back (so Redis has run the command)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, upstream_writer))
        await asyncio.gather(
            self._pipe(client_reader, upstream_writer, None),
            self._pipe(upstream_reader, client_writer, self.replies_flowing),
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        try:
            while data := await reader.read(65536):
                if gate is not None and not gate.is_set():
                    self.reply_held.set()
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test Redis that a test can cut and restore, on the same port."""
    host_port = redis_url.removeprefix("redis://").split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    yield proxy
    if proxy._server is not None:
        await proxy.stop()

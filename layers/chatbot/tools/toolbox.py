"""Every tool source of the process, created once in the app lifespan: the built-in tools (an in-process MCP
server) and the remote MCP servers of `CHATBOT_MCP_SERVERS` (one shared connection pool). Each request
gets its `Catalog` from it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio
import httpx2

from ..appdata import AppData
from ..permissions import Caller
from ..settings import McpServerConfig
from .builtin import BuiltinTools
from .catalog import Catalog, named
from .remote import Listing, RemoteServer
from .tool import Tool

POOL_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)


class Toolbox:
    """The built-in tools and the remote servers; `listing` then `catalog` give a request its tools."""

    def __init__(
        self,
        appdata: AppData,
        *,
        builtin: bool = True,
        servers: Sequence[McpServerConfig] = (),
        list_ttl_seconds: float = 60,
        timeout_seconds: float = 20,
        max_result_chars: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
        pool: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.builtin = BuiltinTools(
            appdata, timeout_seconds=timeout_seconds, max_result_chars=max_result_chars
        )
        self.offers_builtin = builtin
        self.max_result_chars = max_result_chars
        self.servers: dict[str, RemoteServer] = {}
        self._pool: httpx2.AsyncBaseTransport | None = None
        if servers:
            # One pool for every remote server: connections are kept alive across sessions and requests.
            self._pool = pool or httpx2.AsyncHTTPTransport(limits=POOL_LIMITS)
            for config in servers:
                self.servers[config.name] = RemoteServer(
                    config, self._pool, list_ttl_seconds=list_ttl_seconds, clock=clock
                )
        self._warned: set[tuple[str, str]] = set()

    async def __aenter__(self) -> Toolbox:
        """Open the built-in tools' in-process client."""
        await self.builtin.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Close the in-process client and the remote servers' connection pool."""
        try:
            await self.builtin.__aexit__(*exc)
        finally:
            if self._pool is not None:
                await self._pool.aclose()

    async def listing(self, user_id: str, org_id: str, token: str | None) -> Listing:
        """The remote servers' tools for this user, all listed at once (each bounded by its own timeout;
        one that fails is left out). Without remote servers it returns at once."""
        found: dict[str, list[Tool] | None] = dict.fromkeys(self.servers)
        if not self.servers:
            return Listing(found)

        async def list_one(server: RemoteServer) -> None:
            found[server.name] = await server.tools(f"{org_id}#{user_id}", token)

        async with anyio.create_task_group() as group:
            for server in self.servers.values():
                group.start_soon(list_one, server)
        return Listing(found)

    def catalog(self, caller: Caller, token: str | None, listing: Listing | None = None) -> Catalog:
        """The tools of one request: the built-ins (unless `CHATBOT_BUILTIN_TOOLS=false`) and `listing`."""
        builtin = list(self.builtin.all()) if self.offers_builtin else []
        listing = listing or Listing({})
        return Catalog(
            caller,
            named(builtin, listing, self._warned),
            builtin=self.builtin if self.offers_builtin else None,
            servers=self.servers,
            token=token,
            left_out=listing.left_out,
            max_result_chars=self.max_result_chars,
        )

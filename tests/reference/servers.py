"""Real MCP servers for the remote-client tests, each on 127.0.0.1 and an ephemeral port: the reference
`@modelcontextprotocol/server-everything` (Node, installed by `make reference-servers`) and the example host
app of `examples/projects` (in a background thread)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from examples.projects.server import JwtVerifier, create_app
from examples.projects.store import Store
from tests.processes import stop

EVERYTHING = Path(__file__).parent / "server-everything"
ENTRY = EVERYTHING / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited while starting")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {STARTUP_SECONDS} s")


@contextmanager
def everything_server() -> Iterator[str]:
    """The reference server over Streamable HTTP; yields its MCP endpoint URL."""
    node = shutil.which("node")
    if node is None or not ENTRY.is_file():
        raise RuntimeError("server-everything is not installed: run `make reference-servers` (needs node)")
    port = _free_port()
    process = subprocess.Popen(
        [node, str(ENTRY), "streamableHttp"],
        env={**os.environ, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, lambda: process.poll() is None)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)


@contextmanager
def example_app(secret: str, database: Path) -> Iterator[tuple[str, Store]]:
    """The example host app verifying tokens with `secret`; yields its MCP endpoint URL and its store."""
    store = Store(database)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    app = create_app(store, JwtVerifier(secret=secret), base_url=base_url)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        _wait_for_port(port, thread.is_alive)
        yield f"{base_url}/mcp", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()

"""Who closes an idle HTTP connection, and what a request sent on it meets (issue: the soak flood's cancel
failing with "Server disconnected without sending a response").

The server closes a keep-alive connection once it has idled for its keep-alive timeout; a request that
reaches a connection the server has already closed gets no response at all. So a client must give up its
pooled connections before the server does: the test server keeps them longer than any test client, and the
deployed server (run.sh) longer than the Lambda Web Adapter's client pool.
"""

from __future__ import annotations

import re
import select
import socket
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import SERVER_KEEP_ALIVE_SECONDS, ServerFactory

ROOT = Path(__file__).resolve().parents[2]
# The Lambda Web Adapter's own pool idle timeout (src/lib.rs, `pool_idle_timeout(Duration::from_secs(4))`).
ADAPTER_POOL_IDLE_SECONDS = 4.0
SHORT_KEEP_ALIVE = 0.5
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
CANCEL = (
    b"POST /api/chatbot/cancel HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def _read_response(sock: socket.socket, within: float = 5.0) -> bytes:
    """One whole response with a Content-Length body (bounded wait)."""
    sock.settimeout(within)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _wait_for_close(sock: socket.socket, within: float) -> float:
    """Seconds until the peer closes `sock` (recv returns b""), failing after `within`."""
    started = time.monotonic()
    ready, _, _ = select.select([sock], [], [], within)
    assert ready, f"the server kept the idle connection open for {within} s"
    assert sock.recv(1, socket.MSG_PEEK) == b""
    return time.monotonic() - started


async def test_the_server_closes_a_connection_that_idled_for_its_keep_alive_timeout(
    start_server: ServerFactory,
) -> None:
    server = start_server(keep_alive_seconds=SHORT_KEEP_ALIVE)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(HEALTHZ)
        assert _read_response(sock).startswith(b"HTTP/1.1 200")
        idled = _wait_for_close(sock, within=SHORT_KEEP_ALIVE * 10)
    assert idled >= SHORT_KEEP_ALIVE * 0.9


async def test_a_request_on_a_reused_connection_is_answered_until_the_server_closes_it_for_idling(
    start_server: ServerFactory,
) -> None:
    server = start_server(keep_alive_seconds=SHORT_KEEP_ALIVE)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        # Reused while the server still keeps it: answered (401, the token is not valid).
        sock.sendall(HEALTHZ)
        _read_response(sock)
        sock.sendall(CANCEL)
        assert _read_response(sock).startswith(b"HTTP/1.1 401")
        _wait_for_close(sock, within=SHORT_KEEP_ALIVE * 10)
        # Reused after the server closed it for idling, by a client that had not seen the close yet (a
        # pool that checked the connection a moment before the server's FIN arrived): the write succeeds,
        # and nothing comes back. This is httpx's "Server disconnected without sending a response".
        sock.sendall(CANCEL)
        sock.settimeout(5)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
    assert answer == b""


def test_test_clients_give_up_idle_connections_before_the_test_server_closes_them() -> None:
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert client_expiry < SERVER_KEEP_ALIVE_SECONDS


def test_the_deployed_server_keeps_idle_connections_longer_than_the_adapter_pools_them() -> None:
    run_sh = (ROOT / "functions" / "chatbot" / "run.sh").read_text()
    match = re.search(r"--timeout-keep-alive (\d+)", run_sh)
    assert match is not None, "run.sh must set uvicorn's keep-alive timeout"
    assert float(match.group(1)) > ADAPTER_POOL_IDLE_SECONDS

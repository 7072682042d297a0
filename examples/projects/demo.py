"""`make run EXAMPLE=1`: the demo app with the example host app's MCP server beside it.

Both verify tokens with one key: the development secret (`AUTH_JWT_SECRET` from the environment or `.env`,
else a fresh random one shared by the two processes), so the token the demo page mints for a user is the
one the chatbot forwards to the example app. `CHATBOT_MCP_SERVERS` names the example app as `projects`
with `auth: forward` unless it is set already; `EXAMPLE_PORT` (default 3001) is where it listens.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STARTUP_SECONDS = 30


def _wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the example app exited ({process.returncode}); see its output above")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"the example app did not listen on port {port} within {STARTUP_SECONDS} s")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def main() -> None:
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env")  # what the chatbot will read anyway; the example needs the same key
    if not os.environ.get("AUTH_JWT_SECRET") and not os.environ.get("AUTH_JWKS_URL"):
        os.environ["AUTH_JWT_SECRET"] = secrets.token_urlsafe(32)
    port = int(os.environ.get("EXAMPLE_PORT", "3001"))
    os.environ.setdefault(
        "CHATBOT_MCP_SERVERS",
        json.dumps([{"name": "projects", "url": f"http://127.0.0.1:{port}/mcp", "auth": "forward"}]),
    )
    if not _free(port):
        raise SystemExit(
            f"port {port} is in use: stop what listens there, or set EXAMPLE_PORT to a free port"
        )
    # A terminated launcher still stops the example app (the `finally` below runs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    example = subprocess.Popen([sys.executable, "-m", "examples.projects", "--port", str(port)])
    try:
        _wait_for(port, example)
        from chatbot.local import main as serve_demo

        serve_demo()
    finally:
        example.terminate()
        try:
            example.wait(timeout=10)
        except subprocess.TimeoutExpired:
            example.kill()


if __name__ == "__main__":
    main()

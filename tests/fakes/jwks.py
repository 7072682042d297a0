"""A JWKS endpoint for tests: an identity provider's published signing keys, served over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jwt.algorithms import RSAAlgorithm


class KeySet:
    """The keys an identity provider publishes; `publish` replaces them (a rotation, a key withdrawn).
    `fetches` counts the GETs, so a test can tell a cached key set from a fresh one."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.fetches = 0
        self._body = b'{"keys": []}'
        self._lock = threading.Lock()

    def publish(self, *keys: tuple[Any, str]) -> None:
        """Publish `(public RSA key, kid)` pairs (RS256) as the whole key set."""
        jwks = [
            {**json.loads(RSAAlgorithm.to_jwk(key)), "kid": kid, "alg": "RS256", "use": "sig"}
            for key, kid in keys
        ]
        with self._lock:
            self._body = json.dumps({"keys": jwks}).encode()

    def served(self) -> bytes:
        with self._lock:
            self.fetches += 1
            return self._body


@contextmanager
def serve_key_set() -> Iterator[KeySet]:
    """Serve a key set (empty until published)."""
    holder: list[KeySet] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = holder[0].served()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(KeySet(f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()


@contextmanager
def serve_jwks(public_key: Any, kid: str) -> Iterator[str]:
    """Serve `public_key` (RSA, RS256) as the only key of a JWKS; yields the JWKS URL."""
    with serve_key_set() as keys:
        keys.publish((public_key, kid))
        yield keys.url

"""A JWKS endpoint for tests: an identity provider's published signing keys, served over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jwt.algorithms import RSAAlgorithm


@contextmanager
def serve_jwks(public_key: Any, kid: str) -> Iterator[str]:
    """Serve `public_key` (RSA, RS256) as the only key of a JWKS; yields the JWKS URL."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    body = json.dumps({"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/.well-known/jwks.json"
    finally:
        httpd.shutdown()

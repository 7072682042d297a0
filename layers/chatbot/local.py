"""Local mode (`make run`, tests): embedded DynamoDB, seeded demo data, development tokens, the demo page.

Never active in Lambda: the template does not set `CHATBOT_LOCAL`, owns the tables and seeds nothing.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from . import seed
from .errors import ChatbotError, Forbidden, InvalidRequest
from .observability import logger
from .settings import Settings

FRONTEND_DIR = Path(os.environ.get("CHATBOT_FRONTEND_DIR", Path(__file__).resolve().parents[2] / "frontend"))
DEV_TOKEN_SECONDS = 3600
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


class LoopbackHostMiddleware:
    """Local mode answers only requests addressed to a loopback name. A web page that rebinds its own DNS name
    to 127.0.0.1 reaches the server under that name, so refusing other `Host`s keeps it from minting demo
    tokens and spending the developer's API key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _is_loopback(Request(scope).headers.get("host", "")):
            refusal = InvalidRequest(
                "This development server answers only requests addressed to 127.0.0.1, localhost or [::1]."
            )
            await JSONResponse(refusal.body(), status_code=refusal.status)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_loopback(host: str) -> bool:
    """Whether a `Host` header (with or without a port) names the loopback interface."""
    name = host.strip().lower()
    # "[::1]:3000" keeps its brackets; "localhost:3000" drops its port.
    name = name[: name.find("]") + 1] if name.startswith("[") else name.partition(":")[0]
    return name in LOOPBACK_HOSTS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def environment(settings: Settings) -> Iterator[Settings]:
    """Settings for a local run: an embedded moto DynamoDB unless `AWS_ENDPOINT_URL_DYNAMODB` is set, and
    a random development signing secret unless `AUTH_JWT_SECRET` is set."""
    # boto3 insists on credentials even for a local endpoint; these are never sent to AWS.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    updates: dict[str, Any] = {}
    if settings.auth_jwt_secret is None and settings.auth_jwks_url is None:
        updates["auth_jwt_secret"] = SecretStr(secrets.token_urlsafe(32))
    server = None
    if settings.aws_endpoint_url_dynamodb is None:
        from moto.server import ThreadedMotoServer  # only local runs import moto

        # The embedded server's per-request access log would drown the app's own.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        updates["aws_endpoint_url_dynamodb"] = f"http://127.0.0.1:{port}"
        logger.info(
            "embedded DynamoDB (moto) started", extra={"endpoint": updates["aws_endpoint_url_dynamodb"]}
        )
    try:
        yield settings.model_copy(update=updates)
    finally:
        if server is not None:
            server.stop()


async def prepare_tables(dynamodb: Any, settings: Settings) -> None:
    """Create the tables where missing and seed the demo data (idempotent), at whichever endpoint."""
    await anyio.to_thread.run_sync(
        seed.create_tables,
        dynamodb,
        settings.app_table,
        settings.chatbot_usage_table,
        settings.chatbot_conversations_table,
        settings.chatbot_audit_table,
    )
    await anyio.to_thread.run_sync(seed.seed_demo_data, dynamodb, settings.app_table)


def _demo_users() -> list[dict[str, str]]:
    return [dict(user) for user in seed.DEMO_USERS]


async def dev_users(request: Request) -> Response:
    """The demo users the demo page's picker offers."""
    return JSONResponse(_demo_users())


async def dev_token(request: Request) -> Response:
    """A development token (HS256, one hour) for a demo user. Only served in local mode."""
    try:
        data = await request.json()
    except ValueError as exc:
        raise InvalidRequest('The body must be JSON: {"user_id": ...}.') from exc
    user_id = data.get("user_id") if isinstance(data, dict) else None
    user = next((u for u in _demo_users() if u["user_id"] == user_id), None)
    if user is None:
        raise InvalidRequest("user_id must be one of the demo users.")
    settings = request.app.state.services.settings
    secret = settings.auth_jwt_secret
    if secret is None:
        raise Forbidden("Development tokens need AUTH_JWT_SECRET (HS256); this server verifies with JWKS.")
    now = int(time.time())
    # Shaped as configured, so the demo also runs with a host's claim names and roles from the token.
    claims: dict[str, Any] = {
        "sub": user["user_id"],
        settings.auth_org_claim: user["org_id"],
        "name": user["name"],
        "email": user["email"],
        "iat": now,
        "exp": now + DEV_TOKEN_SECONDS,
    }
    if settings.auth_role_claim:
        claims[settings.auth_role_claim] = user["role"]
    token = jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")
    return JSONResponse({"token": token, "expires_at": claims["exp"]})


async def demo_page(request: Request) -> Response:
    """The demo host page with the chat sheet."""
    page = FRONTEND_DIR / "demo" / "index.html"
    if not page.is_file():
        raise ChatbotError("The demo page is missing: run `make run` to build the frontend.")
    return FileResponse(page, headers={"cache-control": "no-cache"})


def routes() -> list[BaseRoute]:
    """Routes only local mode serves."""
    return [
        Route("/", demo_page, methods=["GET"]),
        Route("/api/dev/users", dev_users, methods=["GET"]),
        Route("/api/dev/token", dev_token, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=FRONTEND_DIR / "dist", check_dir=False), name="static"),
    ]


def main() -> None:
    """`make run`: read `.env`, switch local mode on, and serve on 127.0.0.1:$PORT (default 3000)."""
    import sys

    import uvicorn
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env")  # variables already in the environment win over the file
    os.environ.setdefault("CHATBOT_LOCAL", "true")
    settings = Settings()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "functions" / "chatbot"))
    print(f"Chatbot demo on http://127.0.0.1:{settings.port}  (Ctrl+C stops it)", flush=True)
    uvicorn.run(
        "main:app", host="127.0.0.1", port=settings.port, log_level="warning", timeout_graceful_shutdown=5
    )


if __name__ == "__main__":
    main()

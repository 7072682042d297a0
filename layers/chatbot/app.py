"""The Starlette application: routes, the error table applied, and clients created once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import api, credentials, local, mcp_endpoint, snapshot
from .aws import dynamodb_client
from .errors import ChatbotError, InternalError, for_status
from .observability import RequestMetrics, log_context, logger
from .services import build_services
from .settings import Settings

REQUEST_ID_HEADER = "x-request-id"


async def on_chatbot_error(request: Request, exc: Exception) -> Response:
    """The error table applied: every condition becomes its status and `{"error", "message", ...}` body."""
    assert isinstance(exc, ChatbotError)
    RequestMetrics.refusal(exc.code)
    logger.info("request refused", extra={"error": exc.code, "status": exc.status, "path": request.url.path})
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers())


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the same JSON shape as every other error."""
    assert isinstance(exc, HTTPException)
    condition = for_status(exc.status_code, str(exc.detail))
    return JSONResponse(condition.body(), status_code=exc.status_code, headers=exc.headers)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a bug becomes a logged traceback and a JSON 500, never an HTML page."""
    logger.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse(InternalError().body(), status_code=InternalError.status)


class RequestIdMiddleware:
    """Gives every request an id (in logs and the `x-request-id` response header)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"req_{uuid.uuid4().hex}"
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        with log_context(request_id=request_id):
            await self.app(scope, receive, send_with_id)


def _lifespan(settings: Settings) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: the per-process clients, created once and closed in reverse order."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            effective = settings
            if settings.chatbot_local:
                effective = stack.enter_context(local.environment(settings))
            # Reading the secrets (network) overlaps creating the DynamoDB client (CPU: loading its model).
            effective, dynamodb = await asyncio.gather(
                anyio.to_thread.run_sync(credentials.resolve, effective),
                anyio.to_thread.run_sync(dynamodb_client, effective),
            )
            effective.check()
            if effective.chatbot_local:
                await local.prepare_tables(dynamodb, effective)
            services = build_services(effective, dynamodb)
            app.state.services = services
            # Under SnapStart this process may be resumed from a snapshot: renew what it shared (snapshot.py).
            app.state.restore_watch = (
                snapshot.restore_watch(effective, dynamodb, services.anthropic)
                if effective.snapstart
                else None
            )
            await stack.enter_async_context(services.toolbox)
            stack.push_async_callback(services.lock.aclose)
            stack.push_async_callback(services.journal.aclose)
            stack.push_async_callback(services.mcp_rate.aclose)
            if effective.chatbot_mcp_endpoint:
                app.state.mcp = mcp_endpoint.McpEndpoint(services)
                await stack.enter_async_context(app.state.mcp.run())
            if services.anthropic is not None:
                stack.push_async_callback(services.anthropic.close)
            yield

    return lifespan


def _routes(settings: Settings) -> list[BaseRoute]:
    conversation = "/api/chatbot/conversations/{conversation_id}"
    routes: list[BaseRoute] = [
        Route("/api/chatbot/message", api.post_message, methods=["POST"]),
        Route("/api/chatbot/cancel", api.post_cancel, methods=["POST"]),
        Route("/api/chatbot/usage", api.get_usage, methods=["GET"]),
        Route("/api/chatbot/status", api.get_status, methods=["GET"]),
        Route("/api/chatbot/conversations", api.list_conversations, methods=["GET"]),
        Route(conversation, api.get_conversation, methods=["GET"]),
        Route(conversation, api.patch_conversation, methods=["PATCH"]),
        Route(conversation, api.delete_conversation, methods=["DELETE"]),
        Route(conversation + "/stream", api.get_stream, methods=["GET"]),
        Route("/api/chatbot/audit", api.get_audit, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
    ]
    if settings.chatbot_mcp_endpoint:
        routes += [
            # GET (a server-to-client stream) and DELETE (ending a session) do not apply to a stateless
            # server: the routing answers them 405.
            Route(mcp_endpoint.PATH, mcp_endpoint.serve, methods=["POST"]),
            Route(mcp_endpoint.METADATA_PATH, mcp_endpoint.metadata, methods=["GET"]),
            Route(mcp_endpoint.METADATA_PATH + mcp_endpoint.PATH, mcp_endpoint.metadata, methods=["GET"]),
        ]
    if settings.chatbot_local:
        routes += local.routes()
    return routes + snapshot.routes(settings)


def _middleware(settings: Settings) -> list[Middleware]:
    middleware = [Middleware(RequestIdMiddleware), Middleware(snapshot.RestoreMiddleware)]
    if settings.chatbot_local:
        middleware.append(Middleware(local.LoopbackHostMiddleware))
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["authorization", "content-type", "last-event-id", "mcp-protocol-version"],
                expose_headers=["x-request-id", "retry-after", "www-authenticate"],
                max_age=600,
            )
        )
    return middleware


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app: the same object runs under uvicorn locally, in tests and in Lambda (via LWA)."""
    settings = settings or Settings()
    return Starlette(
        routes=_routes(settings),
        middleware=_middleware(settings),
        lifespan=_lifespan(settings),
        exception_handlers={
            ChatbotError: on_chatbot_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )

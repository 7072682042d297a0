"""The Starlette application: routes, the error table applied, and clients created once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import anyio
from anthropic import AsyncAnthropic
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import credentials, local
from .admission import admit, membership
from .agent import Turn
from .appdata import AppData
from .auth import Identity, TokenVerifier, bearer_token
from .aws import dynamodb_client
from .chat import ChatStream
from .errors import ChatbotDisabled, ChatbotError, InternalError, for_status
from .lock import RequestLock, create_lock
from .meter import Meter
from .observability import RequestMetrics, log_context, logger
from .quota import QuotaLedger
from .request import parse_message, read_body
from .settings import Settings
from .tools import Toolbox

REQUEST_ID_HEADER = "x-request-id"


@dataclass
class Services:
    """Everything a request needs, created once per process."""

    settings: Settings
    verifier: TokenVerifier
    appdata: AppData
    lock: RequestLock
    ledger: QuotaLedger
    toolbox: Toolbox
    anthropic: AsyncAnthropic | None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _request_id(request: Request) -> str:
    request_id: str = request.scope["state"]["request_id"]
    return request_id


async def _identify(request: Request) -> Identity:
    return await _services(request).verifier.verify(bearer_token(request.headers.get("authorization")))


async def post_message(request: Request) -> Response:
    """Admit the request (auth, role, lock, quota) and stream the answer."""
    services = _services(request)
    body = await read_body(request)
    if services.anthropic is None:
        raise ChatbotDisabled()
    identity = await _identify(request)
    with log_context(user_id=identity.user_id, org_id=identity.org_id):
        payload = parse_message(body)
        request_id = _request_id(request)
        settings = services.settings
        async with contextlib.AsyncExitStack() as resources:
            caller, lease = await admit(services.appdata, services.lock, identity, request_id, resources)
            meter = Meter(services.ledger, caller.user_id, caller.org_id)
            resources.push_async_callback(meter.close)
            turn = Turn(
                client=services.anthropic,
                toolbox=services.toolbox,
                meter=meter,
                settings=settings,
                caller=caller,
                messages=payload.messages(),
            )
            await turn.prepare()
            return ChatStream(
                turn,
                meter,
                # From here the response owns the lease and the meter: it closes them when it ends.
                resources.pop_all(),
                lease.cancelled,
                deadline_seconds=settings.chatbot_request_timeout_seconds,
                keepalive_seconds=settings.chatbot_keepalive_seconds,
                metrics=RequestMetrics(),
                log_keys={"request_id": request_id, "user_id": caller.user_id, "org_id": caller.org_id},
            )


async def post_cancel(request: Request) -> Response:
    """Stop the caller's request in flight, on whichever instance runs it."""
    identity = await _identify(request)
    cancelled = await _services(request).lock.cancel(identity.user_id)
    return JSONResponse({"cancelled": cancelled})


async def get_usage(request: Request) -> Response:
    """Today's usage of the caller, their organization and everyone."""
    services = _services(request)
    identity = await _identify(request)
    caller = await membership(services.appdata, identity)
    return JSONResponse(await services.ledger.report(caller.user_id, caller.org_id))


async def get_status(request: Request) -> Response:
    """Whether the assistant is on, and with which model (no auth: the panel asks before sign-in)."""
    settings = _services(request).settings
    return JSONResponse(
        {
            "enabled": settings.enabled,
            "model": settings.chatbot_model,
            "max_iterations": settings.chatbot_max_iterations,
        }
    )


async def healthz(request: Request) -> Response:
    """Readiness for the Lambda Web Adapter."""
    return JSONResponse({"status": "ok"})


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


def build_services(settings: Settings, dynamodb: Any) -> Services:
    """Create the per-process clients (the Toolbox is entered by the lifespan)."""
    if not settings.enabled:
        logger.warning(
            "ANTHROPIC_API_KEY is not set: the chatbot is disabled and answers 503 chatbot_disabled"
        )
    verifier = TokenVerifier(settings)
    if not verifier.configured:
        logger.warning("neither AUTH_JWT_SECRET nor AUTH_JWKS_URL is set: every token will be refused")
    appdata = AppData(dynamodb, settings.app_table)
    return Services(
        settings=settings,
        verifier=verifier,
        appdata=appdata,
        lock=create_lock(
            settings.redis_url.get_secret_value() if settings.redis_url else None,
            settings.chatbot_lock_ttl_seconds,
        ),
        ledger=QuotaLedger(dynamodb, settings.chatbot_usage_table, settings.daily_limits()),
        toolbox=Toolbox(
            appdata,
            timeout_seconds=settings.chatbot_tool_timeout_seconds,
            max_result_chars=settings.chatbot_tool_result_max_chars,
        ),
        anthropic=(
            AsyncAnthropic(
                api_key=settings.anthropic_api_key.get_secret_value(),
                base_url=settings.anthropic_base_url,
            )
            if settings.anthropic_api_key is not None
            else None
        ),
    )


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
            if effective.chatbot_local:
                await local.prepare_tables(dynamodb, effective)
            services = build_services(effective, dynamodb)
            app.state.services = services
            await stack.enter_async_context(services.toolbox)
            stack.push_async_callback(services.lock.aclose)
            if services.anthropic is not None:
                stack.push_async_callback(services.anthropic.close)
            yield

    return lifespan


def _routes(settings: Settings) -> list[BaseRoute]:
    routes: list[BaseRoute] = [
        Route("/api/chatbot/message", post_message, methods=["POST"]),
        Route("/api/chatbot/cancel", post_cancel, methods=["POST"]),
        Route("/api/chatbot/usage", get_usage, methods=["GET"]),
        Route("/api/chatbot/status", get_status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if settings.chatbot_local:
        routes += local.routes()
    return routes


def _middleware(settings: Settings) -> list[Middleware]:
    middleware = [Middleware(RequestIdMiddleware)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type"],
                expose_headers=["x-request-id", "retry-after"],
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

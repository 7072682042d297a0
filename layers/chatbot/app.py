"""The Starlette application: routes, the error table applied, and clients created once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import boto3
from anthropic import AsyncAnthropic
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import credentials, local
from .agent import Turn
from .appdata import AppData
from .auth import Identity, TokenVerifier, bearer_token
from .chat import ChatStream, EventStreamResponse
from .errors import ChatbotDisabled, ChatbotError, Forbidden, Unavailable
from .lock import Lease, RequestLock, create_lock
from .observability import RequestMetrics, log_context, logger
from .permissions import Caller
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


async def _caller(services: Services, identity: Identity) -> Caller:
    """The caller with the role of their membership record; 403 when they are not a member."""
    try:
        caller = await services.appdata.get_caller(identity.org_id, identity.user_id)
    except (BotoCoreError, ClientError) as exc:
        logger.warning("membership read failed", extra={"error": str(exc)})
        raise Unavailable() from exc
    if caller is None:
        raise Forbidden("You are not a member of this organization.")
    return caller


async def _admit(services: Services, identity: Identity, request_id: str) -> tuple[Caller, Lease]:
    """The caller (membership read, DynamoDB) and their lock (Redis), fetched concurrently: two stores, one
    round trip each, in the time of the slower. A refused membership wins over a held lock, as if checked
    first, and gives the lock back."""
    membership = asyncio.ensure_future(_caller(services, identity))
    locking = asyncio.ensure_future(services.lock.acquire(identity.user_id, request_id))
    try:
        await asyncio.wait((membership, locking))
    except asyncio.CancelledError:
        membership.cancel()
        locking.cancel()
        await _release_if_acquired(locking)
        raise
    try:
        caller = membership.result()
        if not caller.can("chatbot:use"):
            raise Forbidden(f"The {caller.role} role may not use the assistant.")
    except BaseException:
        await _release_if_acquired(locking)
        raise
    return caller, locking.result()


async def _release_if_acquired(locking: asyncio.Future[Lease]) -> None:
    with anyio.CancelScope(shield=True):
        await asyncio.wait((locking,))
        if not locking.cancelled() and locking.exception() is None:
            await locking.result().release()


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
        caller, lease = await _admit(services, identity, request_id)
        settings = services.settings
        turn = Turn(
            client=services.anthropic,
            toolbox=services.toolbox,
            ledger=services.ledger,
            settings=settings,
            caller=caller,
            messages=payload.messages(),
        )
        try:
            await turn.admit()
        except BaseException:
            await lease.release()
            raise
        stream = ChatStream(
            turn,
            lease,
            deadline_seconds=settings.chatbot_request_timeout_seconds,
            keepalive_seconds=settings.chatbot_keepalive_seconds,
            metrics=RequestMetrics(),
            log_keys={"request_id": request_id, "user_id": caller.user_id, "org_id": caller.org_id},
        )
        return EventStreamResponse(stream, headers={REQUEST_ID_HEADER: request_id})


async def post_cancel(request: Request) -> Response:
    """Stop the caller's request in flight, on whichever instance runs it."""
    identity = await _identify(request)
    cancelled = await _services(request).lock.cancel(identity.user_id)
    return JSONResponse({"cancelled": cancelled})


async def get_usage(request: Request) -> Response:
    """Today's usage of the caller, their organization and everyone."""
    services = _services(request)
    identity = await _identify(request)
    caller = await _caller(services, identity)
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
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
    return JSONResponse(
        {"error": code, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    """Last resort: a bug becomes a logged traceback and a JSON 500, never an HTML page."""
    logger.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse(
        {"error": "internal_error", "message": "Something went wrong on our side."}, status_code=500
    )


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


def dynamodb_client(settings: Settings) -> Any:
    """One boto3 DynamoDB client for the process, with timeouts so an outage fails fast (503)."""
    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=100,
    )
    return boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url_dynamodb,
        config=config,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    """The ASGI app: the same object runs under uvicorn locally, in tests and in Lambda (via LWA)."""
    settings = settings or Settings()

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

    routes: list[BaseRoute] = [
        Route("/api/chatbot/message", post_message, methods=["POST"]),
        Route("/api/chatbot/cancel", post_cancel, methods=["POST"]),
        Route("/api/chatbot/usage", get_usage, methods=["GET"]),
        Route("/api/chatbot/status", get_status, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if settings.chatbot_local:
        routes += local.routes()
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
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            ChatbotError: on_chatbot_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
    )

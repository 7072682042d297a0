"""The HTTP API's endpoints. Each one authenticates, checks the permission it needs at the point of use,
and answers JSON (errors through the one table in `errors.py`) or an event stream."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import approval, paging, report
from .admission import Admission, admit, concurrently, succeeded
from .agent import Request as TurnRequest
from .agent import Turn
from .approval import PendingCall
from .auth import Identity, bearer_token
from .chat import ChatStream, journal_lost
from .context import Message
from .conversations import Conversation, view
from .errors import ChatbotDisabled, ChatbotError, Forbidden, InvalidRequest, Unavailable
from .events import is_final
from .journal import Journal
from .meter import Meter
from .observability import RequestMetrics, log_context, logger
from .permissions import Caller
from .replay import ReplayStream
from .request import MessageRequest, parse_json, parse_message, read_body
from .services import Services
from .tools import Listing
from .transcript import Transcript


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _request_id(request: Request) -> str:
    request_id: str = request.scope["state"]["request_id"]
    return request_id


async def _identify(request: Request) -> Identity:
    return await _services(request).verifier.verify(bearer_token(request.headers.get("authorization")))


async def _caller(request: Request, permission: str) -> Caller:
    """The signed-in caller, holding `permission` (403 otherwise)."""
    caller = await _services(request).callers.of(await _identify(request))
    if not caller.can(permission):
        raise Forbidden(f"The {caller.role} role does not have {permission}.")
    return caller


# ------------------------------------------------------------------------------------------------ chat


async def post_message(request: Request) -> Response:
    """Admit the request (auth, role, lock, conversation, quota) and stream the answer."""
    # Longer than most on purpose: it reads as the request's set-up in order, each resource pushed onto one
    # exit stack as it is taken and the stack handed to the response at the end (docs/ARCHITECTURE.md, the
    # path, step 4). Split up, who releases what would be spread over several functions again.
    services = _services(request)
    body = await read_body(request)
    if services.anthropic is None:
        raise ChatbotDisabled()
    token = bearer_token(request.headers.get("authorization"))
    identity = await services.verifier.verify(token)
    with log_context(user_id=identity.user_id, org_id=identity.org_id):
        payload = parse_message(body)
        request_id = _request_id(request)
        async with contextlib.AsyncExitStack() as resources:
            admitted, listing = await _admitted_and_listed(
                services, identity, token, request_id, resources, payload.conversation_id
            )
            caller = admitted.caller
            conversation, history, pending = _conversation_of(services, payload, admitted)
            decided, declined = await _decisions(services, payload, conversation, pending)
            meter = Meter(services.ledger, caller.user_id, caller.org_id, services.tracer)
            resources.push_async_callback(meter.close)
            turn = Turn(
                client=services.anthropic,
                tools=services.toolbox.catalog(caller, token, listing),
                meter=meter,
                settings=services.settings,
                caller=caller,
                request=TurnRequest(
                    request_id, conversation.id, services.audit, services.clock, tracer=services.tracer
                ),
                history=history,
                text=payload.message,
                decisions=decided,
            )
            metrics = RequestMetrics()
            journal = await _prepared(
                services, turn, conversation.id, request_id, conversation.owner, metrics
            )
            transcript = Transcript(
                services.conversations, conversation, request_id, turn, seed=payload.seed(), declined=declined
            )
            resources.push_async_callback(transcript.finish)
            return ChatStream(
                turn,
                meter,
                transcript,
                journal,
                # From here the response owns the lease, the meter and the transcript: it closes them.
                resources.pop_all(),
                admitted.lease.cancelled,
                settings=services.settings,
                metrics=metrics,
                log_keys={"request_id": request_id, "user_id": caller.user_id, "org_id": caller.org_id},
            )


def _conversation_of(
    services: Services, payload: MessageRequest, admitted: Admission
) -> tuple[Conversation, list[Message], list[PendingCall]]:
    """The conversation the request continues, with its history and the calls waiting in it; or a new one,
    which the legacy `history` (if any) seeds."""
    if admitted.loaded is not None:
        return admitted.loaded.conversation, admitted.loaded.history, admitted.loaded.pending
    caller = admitted.caller
    first = payload.history[0].content if payload.history else payload.message or ""
    return services.conversations.new(caller.user_id, caller.org_id, first), payload.seed(), []


async def _admitted_and_listed(
    services: Services,
    identity: Identity,
    token: str,
    request_id: str,
    resources: contextlib.AsyncExitStack,
    conversation_id: str | None,
) -> tuple[Admission, Listing | None]:
    """Admit the request and, at the same time, list the remote MCP servers' tools for this user, so the
    listing adds no round trip of its own before the first token. A refused request stops the listing."""

    async def admitted() -> Admission:
        return await admit(
            services.callers,
            services.lock,
            services.conversations,
            identity,
            request_id,
            resources,
            conversation_id=conversation_id,
            budget=services.settings.chatbot_context_token_budget,
            tracer=services.tracer,
        )

    toolbox = services.toolbox
    if not toolbox.servers:
        return await admitted(), None
    listing: Listing | None = None
    refused: ChatbotError | None = None

    async def list_tools() -> None:
        nonlocal listing
        listing = await toolbox.listing(identity.user_id, identity.org_id, token)

    async with anyio.create_task_group() as group:
        group.start_soon(list_tools)
        try:
            admission = await admitted()
        except ChatbotError as exc:
            refused = exc
            group.cancel_scope.cancel()
    if refused is not None:
        raise refused
    return admission, listing


async def _prepared(
    services: Services, turn: Turn, conversation_id: str, request_id: str, owner: str, metrics: RequestMetrics
) -> Journal | None:
    """Prepare the turn (the first reservation) and open the request's journal at the same time, so the
    journal costs no round trip of its own; the journal, or None if it could not be opened. It is open
    before any event is written, so a client that reads the first event and re-attaches at once finds
    this request, not the previous one."""
    settings = services.settings
    lifetime = (
        settings.chatbot_request_timeout_seconds
        + settings.cleanup_seconds
        + settings.chatbot_stream_retention_seconds
    )

    async def open_journal() -> bool:
        await services.journal.open(conversation_id, request_id, owner, lifetime)
        return True

    prepared, opened = await concurrently(turn.prepare, open_journal)
    if isinstance(prepared, ChatbotError):
        if opened is True:
            with contextlib.suppress(Unavailable):
                await services.journal.discard(request_id)
        raise prepared
    if isinstance(opened, Unavailable):
        journal_lost(metrics)
        return None
    succeeded(opened)
    return services.journal


async def _decisions(
    services: Services, payload: MessageRequest, conversation: Conversation, pending: list[PendingCall]
) -> tuple[list[tuple[PendingCall, bool]], list[PendingCall]]:
    """The calls this request decides, and those its new message declines. Approvals are checked and taken
    (once) before the stream; a new message declines every call still waiting."""
    if payload.approvals is None:
        return [(call, False) for call in pending], pending
    decided = approval.decisions(pending, payload.approvals, services.clock())
    await services.conversations.take_pending(conversation, [call for call, _ in decided])
    return decided, []


async def post_cancel(request: Request) -> Response:
    """Stop the caller's request in flight, on whichever instance runs it."""
    identity = await _identify(request)
    cancelled = await _services(request).lock.cancel(identity.user_id)
    return JSONResponse({"cancelled": cancelled})


async def get_usage(request: Request) -> Response:
    """Today's usage of the caller, their organization and everyone; and the caller's role and permissions
    (the chat sheet offers only the suggestions the role can act on)."""
    services = _services(request)
    caller = await services.callers.of(await _identify(request))
    report = await services.ledger.report(caller.user_id, caller.org_id)
    return JSONResponse({**report, "role": caller.role, "permissions": sorted(caller.permissions)})


async def get_usage_report(request: Request) -> Response:
    """The organization's usage by day and by user over a range of days (owners and admins)."""
    services = _services(request)
    caller = await _caller(request, "usage:read")
    span = report.parse_range(dict(request.query_params), services.ledger.today())
    return JSONResponse(await report.organization_report(services.ledger, services.appdata, caller, span))


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


# --------------------------------------------------------------------------------------- conversations


class Rename(BaseModel):
    """`PATCH /api/chatbot/conversations/{id}`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(min_length=1, max_length=200)


async def list_conversations(request: Request) -> Response:
    """The caller's conversations, most recently updated first, a page at a time."""
    caller = await _caller(request, "chatbot:use")
    found, cursor = await _services(request).conversations.recent(
        caller.user_id,
        caller.org_id,
        limit=paging.limit_of(request.query_params.get("limit")),
        cursor=request.query_params.get("cursor"),
    )
    return JSONResponse({"conversations": [c.summary() for c in found], "next_cursor": cursor})


async def get_conversation(request: Request) -> Response:
    """One conversation with its messages, and the request in flight to re-attach to, if any."""
    services = _services(request)
    caller = await _caller(request, "chatbot:use")
    conversation_id = request.path_params["conversation_id"]
    loaded = await services.conversations.get(caller.user_id, caller.org_id, conversation_id)
    return JSONResponse(view(loaded, await _active_request(services, conversation_id)))


async def _active_request(services: Services, conversation_id: str) -> dict[str, Any] | None:
    """The conversation's request still running (`{"id", "last_event_id"}`), or None."""
    try:
        latest = await services.journal.latest(conversation_id)
        last = await services.journal.last(latest.request_id) if latest else None
    except Unavailable:
        logger.warning("event journal unavailable: no request in flight reported")
        return None
    if latest is None or (last is not None and is_final(last[1])):
        return None
    return {"id": latest.request_id, "last_event_id": last[0] if last else 0}


async def patch_conversation(request: Request) -> Response:
    """Rename a conversation."""
    caller = await _caller(request, "chatbot:use")
    rename = parse_json(await read_body(request), Rename)
    renamed = await _services(request).conversations.rename(
        caller.user_id, caller.org_id, request.path_params["conversation_id"], rename.title
    )
    return JSONResponse(renamed.summary())


async def delete_conversation(request: Request) -> Response:
    """Delete a conversation for good."""
    caller = await _caller(request, "chatbot:use")
    await _services(request).conversations.delete(
        caller.user_id, caller.org_id, request.path_params["conversation_id"]
    )
    return Response(status_code=204)


async def get_stream(request: Request) -> Response:
    """Re-attach to the conversation's latest request: its events after `Last-Event-ID` (or `?after=`),
    kept then live, until it ends; 204 when there is nothing to send."""
    services = _services(request)
    caller = await _caller(request, "chatbot:use")
    conversation_id = request.path_params["conversation_id"]
    after = _after(request)
    latest = await services.journal.latest(conversation_id)
    if latest is None or latest.owner != f"{caller.org_id}#{caller.user_id}":
        # Nothing kept for this caller: 404 unless the conversation is theirs (a new conversation is known
        # to the journal before its own records are written, hence the journal's owner above).
        await services.conversations.head(caller.user_id, caller.org_id, conversation_id)
        return Response(status_code=204)
    request_id = latest.request_id
    last = await services.journal.last(request_id)
    if last is not None and is_final(last[1]) and last[0] <= after:
        return Response(status_code=204)
    first = await services.journal.read(request_id, after, 0)
    if first is None:
        return Response(status_code=204)
    settings = services.settings
    return ReplayStream(
        services.journal,
        request_id,
        after,
        first,
        keepalive_seconds=settings.chatbot_keepalive_seconds,
        follow_seconds=settings.chatbot_request_timeout_seconds + settings.cleanup_seconds,
    )


def _after(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after")
    if raw is None:
        return 0
    if not raw.isdigit() or len(raw) > 12:
        raise InvalidRequest("Last-Event-ID (or after): the id of the last event received, a whole number.")
    return int(raw)


# ----------------------------------------------------------------------------------------------- audit


async def get_audit(request: Request) -> Response:
    """The organization's tool-call audit trail, newest first (owners and admins)."""
    caller = await _caller(request, "audit:read")
    user_id = request.query_params.get("user_id")
    if user_id is not None and not 1 <= len(user_id) <= 256:
        raise InvalidRequest("user_id: 1 to 256 characters.")
    entries, cursor = await _services(request).audit.page(
        caller.org_id,
        limit=paging.limit_of(request.query_params.get("limit")),
        cursor=request.query_params.get("cursor"),
        user_id=user_id,
    )
    return JSONResponse({"entries": entries, "next_cursor": cursor})

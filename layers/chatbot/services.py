"""The per-process clients every request uses, created once when the app starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from anthropic import AsyncAnthropic
from opentelemetry.trace import Tracer

from .appdata import AppData
from .audit import AuditLog
from .auth import TokenVerifier
from .callers import Callers
from .conversations import ConversationStore
from .journal import Journal, create_journal
from .lock import RequestLock, create_lock
from .observability import NO_TRACER, logger
from .quota import QuotaLedger
from .ratelimit import CallRate
from .settings import Settings
from .tools import Toolbox


@dataclass
class Services:
    """Everything a request needs, created once per process."""

    settings: Settings
    verifier: TokenVerifier
    appdata: AppData
    callers: Callers
    lock: RequestLock
    ledger: QuotaLedger
    toolbox: Toolbox
    conversations: ConversationStore
    audit: AuditLog
    journal: Journal
    anthropic: AsyncAnthropic | None
    mcp_rate: CallRate
    """Each user's tool calls through the MCP endpoint in the last minute."""
    clock: Callable[[], float] = field(default=time.time)
    """Wall-clock time (epoch seconds) for deadlines users see, such as an approval's."""
    tracer: Tracer = NO_TRACER
    """Spans of the steps that wait on something (`tracing.py`); a no-op unless tracing is on."""


def build_services(settings: Settings, dynamodb: Any, tracer: Tracer = NO_TRACER) -> Services:
    """Create the per-process clients (the Toolbox is entered by the lifespan)."""
    if not settings.enabled:
        logger.warning(
            "ANTHROPIC_API_KEY is not set: the chatbot is disabled and answers 503 chatbot_disabled"
        )
    verifier = TokenVerifier(settings)
    if not verifier.configured:
        logger.warning("neither AUTH_JWT_SECRET nor AUTH_JWKS_URL is set: every token will be refused")
    if settings.auth_role_claim and settings.chatbot_role_source == "membership":
        logger.warning(
            "AUTH_ROLE_CLAIM is set but CHATBOT_ROLE_SOURCE=membership: roles come from the membership "
            "records and the token's role claim is ignored (set CHATBOT_ROLE_SOURCE=claim to use it)"
        )
    appdata = AppData(dynamodb, settings.app_table, settings.roles)
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    return Services(
        settings=settings,
        verifier=verifier,
        appdata=appdata,
        callers=Callers(appdata, settings.roles, settings.chatbot_role_source, settings.auth_role_claim),
        lock=create_lock(redis_url, settings.chatbot_lock_ttl_seconds),
        ledger=QuotaLedger(
            dynamodb, settings.chatbot_usage_table, settings.daily_limits(), layouts=settings.quota_layouts
        ),
        toolbox=Toolbox(
            appdata,
            builtin=settings.chatbot_builtin_tools,
            servers=settings.chatbot_mcp_servers,
            list_ttl_seconds=settings.chatbot_mcp_list_ttl_seconds,
            timeout_seconds=settings.chatbot_tool_timeout_seconds,
            max_result_chars=settings.chatbot_tool_result_max_chars,
        ),
        conversations=ConversationStore(
            dynamodb, settings.chatbot_conversations_table, settings.chatbot_conversation_retention_days
        ),
        audit=AuditLog(dynamodb, settings.chatbot_audit_table, settings.chatbot_audit_retention_days),
        journal=create_journal(redis_url, settings.chatbot_stream_retention_seconds),
        anthropic=(
            AsyncAnthropic(
                api_key=settings.anthropic_api_key.get_secret_value(), base_url=settings.anthropic_base_url
            )
            if settings.anthropic_api_key is not None
            else None
        ),
        mcp_rate=CallRate(settings.chatbot_mcp_calls_per_minute, redis_url),
        tracer=tracer,
    )

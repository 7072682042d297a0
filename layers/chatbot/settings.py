"""The one typed view of the environment, read once at start-up."""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .errors import ConfigurationError

SERVER_NAME = re.compile(r"[a-z0-9_]{1,20}")


class McpServerConfig(BaseModel):
    """One entry of `CHATBOT_MCP_SERVERS`: a remote MCP server reached over Streamable HTTP."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str
    """Prefix of its tools' names (`<name>_<tool>`)."""
    url: str
    auth: Literal["forward", "none"] = "none"
    """`forward`: every request to it carries the caller's own bearer token; `none`: never."""
    timeout_seconds: float = Field(default=10, gt=0, le=120)
    """Bounds the listing and each call."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SERVER_NAME.fullmatch(value):
            raise ValueError("must be 1 to 20 of a-z, 0-9 and _")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        return value


def mcp_servers(raw: object) -> list[McpServerConfig]:
    """`CHATBOT_MCP_SERVERS` (a JSON array) read and checked; a `ConfigurationError` naming the bad entry
    otherwise (it stops the start-up: a half-configured tool source would fail in every chat)."""
    if isinstance(raw, str):
        if not raw.strip():
            return []
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"CHATBOT_MCP_SERVERS is not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise ConfigurationError('CHATBOT_MCP_SERVERS must be a JSON array of {"name", "url", ...} objects.')
    servers: list[McpServerConfig] = []
    for index, entry in enumerate(raw):
        label = f"entry {index}"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" ({entry['name']!r})"
        if isinstance(entry, McpServerConfig):
            servers.append(entry)
            continue
        try:
            servers.append(McpServerConfig.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'the entry'}: {error['msg'].removeprefix('Value error, ')}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigurationError(f"CHATBOT_MCP_SERVERS {label}: {problems}.") from None
        if sum(server.name == servers[-1].name for server in servers) > 1:
            raise ConfigurationError(f"CHATBOT_MCP_SERVERS {label}: the name is used twice.")
    return servers


class Settings(BaseSettings):
    """Every variable of the README's configuration table, with its default. Secrets are `SecretStr` so they
    never print."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    # Deployed: Secrets Manager ARNs whose values fill the two secrets at start-up (see credentials.py).
    anthropic_api_key_secret_arn: str | None = None
    auth_jwt_secret_arn: str | None = None

    chatbot_model: str = "claude-haiku-4-5"
    chatbot_max_tokens: int = Field(default=4096, ge=1, le=64000)
    chatbot_max_iterations: int = Field(default=10, ge=1, le=50)

    chatbot_daily_token_limit_user: int = Field(default=50_000, ge=0)
    chatbot_daily_token_limit_organization: int = Field(default=1_000_000, ge=0)
    chatbot_daily_token_limit_global: int = Field(default=1_000_000, ge=0)

    chatbot_lock_ttl_seconds: float = Field(default=300, gt=0)
    chatbot_request_timeout_seconds: float = Field(default=240, gt=0)
    # Tuning knobs with safe defaults, overridable for tests.
    chatbot_tool_timeout_seconds: float = Field(default=20, gt=0)
    chatbot_tool_result_max_chars: int = Field(default=20_000, ge=100)
    chatbot_keepalive_seconds: float = Field(default=15, gt=0)

    redis_url: SecretStr | None = None

    chatbot_usage_table: str = "ChatbotUsage"
    app_table: str = "AppData"
    chatbot_conversations_table: str = "ChatbotConversations"
    chatbot_conversation_retention_days: int = Field(default=30, ge=1, le=3650)
    chatbot_context_token_budget: int = Field(default=20_000, ge=0)
    chatbot_audit_table: str = "ChatbotAudit"
    chatbot_audit_retention_days: int = Field(default=365, ge=1, le=3650)

    # Tool sources (README, "Connect your app"): the built-ins, and remote MCP servers.
    chatbot_builtin_tools: bool = True
    chatbot_mcp_servers: Annotated[list[McpServerConfig], NoDecode] = Field(default_factory=list)
    chatbot_mcp_list_ttl_seconds: float = Field(default=60, ge=0)

    chatbot_approval: Literal["writes", "destructive", "none"] = "writes"
    chatbot_approval_ttl_seconds: int = Field(default=900, ge=1)
    chatbot_stream_retention_seconds: int = Field(default=600, ge=1)
    aws_endpoint_url_dynamodb: str | None = None
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION")

    auth_jwt_secret: SecretStr | None = None
    auth_jwks_url: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    # A key withdrawn from the JWKS stops being trusted at the next refresh of the cached key set.
    auth_jwks_cache_seconds: float = Field(default=300, gt=0)
    # Longer-lived tokens are refused: a stolen one must not work for months.
    auth_max_token_lifetime_seconds: int = Field(default=86400, gt=0)

    cors_allow_origins: str = ""

    port: int = 3000
    # Local mode: tables are created and seeded, development tokens are minted, the demo page is served.
    chatbot_local: bool = False

    @field_validator("anthropic_api_key", "redis_url", "auth_jwt_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty line in a .env (`ANTHROPIC_API_KEY=`) means "not configured", not "the empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chatbot_mcp_servers", mode="before")
    @classmethod
    def _mcp_servers(cls, value: Any) -> list[McpServerConfig]:
        return mcp_servers(value)

    @property
    def enabled(self) -> bool:
        """Whether the chatbot can talk to Claude at all."""
        return self.anthropic_api_key is not None

    @cached_property
    def cors_origins(self) -> list[str]:
        """`CORS_ALLOW_ORIGINS` as a list (comma separated)."""
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    def daily_limits(self) -> dict[str, int]:
        """The three tiers' daily token limits, keyed by tier name."""
        return {
            "user": self.chatbot_daily_token_limit_user,
            "organization": self.chatbot_daily_token_limit_organization,
            "global": self.chatbot_daily_token_limit_global,
        }

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
from .permissions import DEFAULT_ROLE_TABLE, RoleTable
from .shards import Layouts

CLEANUP_SECONDS = 10.0
"""The longest the end of a request (its conversation write, the settle, the lock's release) may take after
the deadline, unless the function's timeout leaves less (`Settings.cleanup_seconds`)."""
FUNCTION_TIMEOUT_MARGIN_SECONDS = 5.0
"""What the function's timeout must leave after the request deadline, for the request's cleanup."""
HS256_MIN_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key at least as long as the hash output."""

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
    # The quota counters' shard layouts over time: `YYYY-MM-DD:<global>/<organization>` entries, each from
    # its UTC day on (see shards.py); empty = one item per tier. Date a new entry at least a day ahead.
    chatbot_quota_shards: str = ""

    chatbot_lock_ttl_seconds: float = Field(default=300, gt=0)
    chatbot_request_timeout_seconds: float = Field(default=240, gt=0)
    # Set by the template from the function's timeout: the request deadline must end well before it.
    chatbot_function_timeout_seconds: float | None = Field(default=None, gt=0)
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
    # OpenTelemetry spans joined to Lambda's X-Ray trace (tracing.py); off: the SDK is never imported.
    chatbot_tracing: bool = False
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
    # Identity from the host: which claim names the active organization, where the role comes from
    # (`membership`: the membership record, read at every request; `claim`: the verified token's
    # AUTH_ROLE_CLAIM), and the role table (`CHATBOT_ROLES`, JSON; replaces the built-in one as a whole).
    auth_org_claim: str = Field(default="org_id", min_length=1, max_length=256)
    auth_role_claim: str | None = Field(default=None, min_length=1, max_length=256)
    chatbot_role_source: Literal["membership", "claim"] = "membership"
    # NoDecode: the validator below parses the JSON itself, so a mistake is reported by entry.
    chatbot_roles: Annotated[dict[str, dict[str, list[str]]] | None, NoDecode] = None

    cors_allow_origins: str = ""

    # The built-in tools as an MCP server at `POST /mcp`, and how many tool calls a user may make through it.
    chatbot_mcp_endpoint: bool = True
    chatbot_mcp_calls_per_minute: int = Field(default=60, ge=1, le=100_000)

    port: int = 3000
    # Local mode: tables are created and seeded, development tokens are minted, the demo page is served.
    chatbot_local: bool = False

    # Lambda SnapStart (snapshot.py): Lambda names how this sandbox started (`snap-start`); the Web Adapter
    # (v1.1.0+) POSTs to these paths on the app before the snapshot and after a restore, and refuses them
    # to outside callers.
    aws_lambda_initialization_type: str | None = None
    aws_lwa_snapstart_before_checkpoint_path: str | None = None
    aws_lwa_snapstart_after_restore_path: str | None = None

    @field_validator("anthropic_api_key", "redis_url", "auth_jwt_secret", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty line in a .env (`ANTHROPIC_API_KEY=`) means "not configured", not "the empty key".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chatbot_mcp_servers", mode="before")
    @classmethod
    def _mcp_servers(cls, value: Any) -> list[McpServerConfig]:
        return mcp_servers(value)

    @field_validator("auth_role_claim", mode="before")
    @classmethod
    def _blank_claim_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("chatbot_roles", mode="before")
    @classmethod
    def _role_table(cls, value: Any) -> Any:
        """`CHATBOT_ROLES` checked entry by entry (the error names the bad one); unset or blank: built-in."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        RoleTable.parse(value)
        return json.loads(value) if isinstance(value, str) else value

    @cached_property
    def roles(self) -> RoleTable:
        """The role table in force: `CHATBOT_ROLES`, or the built-in one."""
        return RoleTable(self.chatbot_roles) if self.chatbot_roles is not None else DEFAULT_ROLE_TABLE

    @property
    def snapstart(self) -> bool:
        """Whether this process may be snapshotted and restored (Lambda SnapStart, or its hooks configured)."""
        return (
            self.aws_lambda_initialization_type == "snap-start"
            or self.aws_lwa_snapstart_before_checkpoint_path is not None
            or self.aws_lwa_snapstart_after_restore_path is not None
        )

    @field_validator("chatbot_quota_shards")
    @classmethod
    def _valid_layouts(cls, value: str) -> str:
        Layouts.parse(value)  # raises ValueError naming the bad entry
        return value

    @cached_property
    def quota_layouts(self) -> Layouts:
        """`CHATBOT_QUOTA_SHARDS`, parsed."""
        return Layouts.parse(self.chatbot_quota_shards)

    @property
    def enabled(self) -> bool:
        """Whether the chatbot can talk to Claude at all."""
        return self.anthropic_api_key is not None

    @cached_property
    def cors_origins(self) -> list[str]:
        """`CORS_ALLOW_ORIGINS` as a list (comma separated)."""
        return [origin.strip() for origin in self.cors_allow_origins.split(",") if origin.strip()]

    @property
    def cleanup_seconds(self) -> float:
        """How long a request's cleanup may run after its deadline: `CLEANUP_SECONDS`, or half the margin the
        function's timeout leaves after the deadline when that is less (the function must not be killed
        mid-cleanup, leaving the lock held and the usage unsettled)."""
        if self.chatbot_function_timeout_seconds is None:
            return CLEANUP_SECONDS
        margin = self.chatbot_function_timeout_seconds - self.chatbot_request_timeout_seconds
        return max(0.0, min(CLEANUP_SECONDS, margin / 2))

    def problems(self) -> list[str]:
        """What makes these settings impossible, one sentence each naming the variables (empty when sound).
        Checked at start-up, after the secrets are read."""
        found: list[str] = []
        if self.auth_jwks_url and not (self.auth_issuer and self.auth_audience):
            missing = " and ".join(
                name
                for name, value in (("AUTH_ISSUER", self.auth_issuer), ("AUTH_AUDIENCE", self.auth_audience))
                if not value
            )
            found.append(
                f"AUTH_JWKS_URL is set without {missing}: every token its identity provider signs, for any "
                "application, would be accepted. Set both to your issuer and your application's audience."
            )
        secret = self.auth_jwt_secret.get_secret_value().encode() if self.auth_jwt_secret else None
        if secret is not None and len(secret) < HS256_MIN_SECRET_BYTES:
            found.append(
                f"AUTH_JWT_SECRET is {len(secret)} bytes; HS256 needs at least {HS256_MIN_SECRET_BYTES} "
                "(e.g. `openssl rand -base64 48`)."
            )
        # No default role claim: a bare `role` is often a platform-wide role (Better Auth's admin plugin), not
        # the member's role in the organization, so the host has to name it.
        if self.chatbot_role_source == "claim" and self.auth_role_claim is None:
            found.append(
                "CHATBOT_ROLE_SOURCE=claim needs AUTH_ROLE_CLAIM: the name of the token claim that holds the "
                "member's role in the active organization (e.g. the one your definePayload sets)."
            )
        deadline = self.chatbot_request_timeout_seconds
        if deadline >= self.chatbot_lock_ttl_seconds:
            found.append(
                f"CHATBOT_REQUEST_TIMEOUT_SECONDS ({deadline:g}) must be below CHATBOT_LOCK_TTL_SECONDS "
                f"({self.chatbot_lock_ttl_seconds:g}): a request still running would lose its lock."
            )
        function = self.chatbot_function_timeout_seconds
        if function is not None and deadline + FUNCTION_TIMEOUT_MARGIN_SECONDS > function:
            found.append(
                f"CHATBOT_REQUEST_TIMEOUT_SECONDS ({deadline:g}) must end at least "
                f"{FUNCTION_TIMEOUT_MARGIN_SECONDS:g} s before CHATBOT_FUNCTION_TIMEOUT_SECONDS ({function:g}), "
                "the function's timeout: a request cut off by it leaves its lock and its usage behind."
            )
        return found

    def check(self) -> None:
        """Raise `ConfigurationError` listing every problem, if any."""
        found = self.problems()
        if found:
            raise ConfigurationError("The chatbot cannot start as configured:\n- " + "\n- ".join(found))

    def daily_limits(self) -> dict[str, int]:
        """The three tiers' daily token limits, keyed by tier name."""
        return {
            "user": self.chatbot_daily_token_limit_user,
            "organization": self.chatbot_daily_token_limit_organization,
            "global": self.chatbot_daily_token_limit_global,
        }

"""Settings: read once from the environment, with the documented defaults, secrets that never print."""

from __future__ import annotations

import pytest
from chatbot.app import create_app
from chatbot.errors import ConfigurationError
from chatbot.permissions import DEFAULT_ROLE_TABLE
from chatbot.settings import Settings


def test_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert (settings.chatbot_model, settings.chatbot_max_tokens, settings.chatbot_max_iterations) == (
        "claude-haiku-4-5",
        4096,
        10,
    )
    assert settings.daily_limits() == {"user": 50_000, "organization": 1_000_000, "global": 1_000_000}
    assert (settings.chatbot_lock_ttl_seconds, settings.chatbot_request_timeout_seconds) == (300, 240)
    assert (settings.chatbot_usage_table, settings.app_table, settings.port) == (
        "ChatbotUsage",
        "AppData",
        3000,
    )
    assert not settings.enabled and settings.redis_url is None


def test_environment_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("CHATBOT_DAILY_TOKEN_LIMIT_USER", "1234")
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", "https://a.example, https://b.example,")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6379")
    settings = Settings()
    assert settings.enabled and settings.daily_limits()["user"] == 1234
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    monkeypatch.setenv("AUTH_JWT_SECRET", "jwt-secret-value")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@cache:6379")
    shown = repr(Settings()) + str(Settings().model_dump())
    for secret in ("sk-ant-secret", "jwt-secret-value", "hunter2"):
        assert secret not in shown


def test_a_blank_key_in_a_dotenv_means_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "  ")
    monkeypatch.setenv("REDIS_URL", "")
    settings = Settings()
    assert not settings.enabled and settings.redis_url is None


@pytest.mark.parametrize("name", ["CHATBOT_MAX_TOKENS", "CHATBOT_MAX_ITERATIONS", "CHATBOT_LOCK_TTL_SECONDS"])
def test_nonsense_numbers_are_refused_at_start(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ValueError, match=name.lower()):
        Settings()


def test_remote_mcp_servers_are_read_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CHATBOT_MCP_SERVERS",
        '[{"name": "projects", "url": "https://app.example/mcp", "auth": "forward"},'
        ' {"name": "crm_2", "url": "http://127.0.0.1:4000/mcp", "timeout_seconds": 2.5}]',
    )
    settings = Settings()
    assert [(s.name, s.url, s.auth, s.timeout_seconds) for s in settings.chatbot_mcp_servers] == [
        ("projects", "https://app.example/mcp", "forward", 10),
        ("crm_2", "http://127.0.0.1:4000/mcp", "none", 2.5),
    ]
    assert (settings.chatbot_builtin_tools, settings.chatbot_mcp_list_ttl_seconds) == (True, 60)


def test_no_remote_mcp_servers_by_default_and_a_blank_value_means_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().chatbot_mcp_servers == []
    monkeypatch.setenv("CHATBOT_MCP_SERVERS", " ")
    assert Settings().chatbot_mcp_servers == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "CHATBOT_MCP_SERVERS is not valid JSON"),
        ('{"name": "x", "url": "http://a"}', "must be a JSON array"),
        (
            '[{"name": "ok", "url": "http://a"}, {"name": "Bad-Name", "url": "http://b"}]',
            "entry 1 ('Bad-Name'): name",
        ),
        ('[{"name": "crm", "url": "ftp://b"}]', "entry 0 ('crm'): url: must be an http:// or https:// URL"),
        ('[{"name": "crm", "url": "http://b", "auth": "bearer"}]', "entry 0 ('crm'): auth"),
        ('[{"name": "crm", "url": "http://b", "timeout_seconds": 0}]', "entry 0 ('crm'): timeout_seconds"),
        ('[{"name": "crm", "url": "http://b", "token": "x"}]', "entry 0 ('crm'): token"),
        (
            '[{"name": "crm", "url": "http://b"}, {"name": "crm", "url": "http://c"}]',
            "entry 1 ('crm'): the name is used twice",
        ),
        ('["http://b"]', "entry 0:"),
        ('[{"name": "a_very_long_server_name_indeed", "url": "http://b"}]', "1 to 20"),
    ],
)
def test_a_malformed_mcp_server_list_stops_the_start_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("CHATBOT_MCP_SERVERS", value)
    with pytest.raises(ConfigurationError) as refused:
        Settings()
    assert message in str(refused.value)


def test_identity_defaults_are_the_documented_ones() -> None:
    settings = Settings()
    assert (settings.auth_org_claim, settings.auth_role_claim, settings.chatbot_role_source) == (
        "org_id",
        None,
        "membership",
    )
    assert settings.chatbot_roles is None and settings.roles is DEFAULT_ROLE_TABLE


def test_chatbot_roles_from_the_environment_replaces_the_role_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_ROLES", '{"editor": {"chatbot": ["use"], "audit": ["read"]}}')
    settings = Settings()
    assert settings.roles.roles == ["editor"]
    assert settings.roles.permissions("editor") == {"chatbot:use", "audit:read"}
    assert settings.roles.permissions("admin") == frozenset()


def test_a_blank_chatbot_roles_means_the_built_in_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_ROLES", " ")
    assert Settings().roles is DEFAULT_ROLE_TABLE


def test_a_malformed_chatbot_roles_refuses_to_start_naming_the_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_ROLES", '{"owner": {"chatbot": ["use"]}, "editor": {"member": "read"}}')
    with pytest.raises(ValueError, match="CHATBOT_ROLES: role 'editor', resource 'member'"):
        Settings()
    with pytest.raises(ValueError, match="CHATBOT_ROLES: role 'editor', resource 'member'"):
        create_app()


@pytest.mark.parametrize("role_claim", [None, "", "  "])
async def test_the_claim_role_source_without_a_role_claim_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch, role_claim: str | None
) -> None:
    monkeypatch.setenv("CHATBOT_ROLE_SOURCE", "claim")
    if role_claim is not None:
        monkeypatch.setenv("AUTH_ROLE_CLAIM", role_claim)
    settings = Settings(auth_jwt_secret="s" * 32)
    assert [p for p in settings.problems() if "AUTH_ROLE_CLAIM" in p] == [
        "CHATBOT_ROLE_SOURCE=claim needs AUTH_ROLE_CLAIM: the name of the token claim that holds the member's "
        "role in the active organization (e.g. the one your definePayload sets)."
    ]
    app = create_app(settings)
    with pytest.raises(ConfigurationError, match="CHATBOT_ROLE_SOURCE=claim needs AUTH_ROLE_CLAIM"):
        async with app.router.lifespan_context(app):
            pass


def test_an_unknown_role_source_or_an_empty_organization_claim_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATBOT_ROLE_SOURCE", "token")
    with pytest.raises(ValueError, match="chatbot_role_source"):
        Settings()
    monkeypatch.delenv("CHATBOT_ROLE_SOURCE")
    monkeypatch.setenv("AUTH_ORG_CLAIM", "")
    with pytest.raises(ValueError, match="auth_org_claim"):
        Settings()


def test_the_claim_role_source_with_its_claim_configures_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_ROLE_SOURCE", "claim")
    monkeypatch.setenv("AUTH_ROLE_CLAIM", "organizationRole")
    monkeypatch.setenv("AUTH_ORG_CLAIM", "activeOrganizationId")
    settings = Settings()
    assert (settings.chatbot_role_source, settings.auth_role_claim, settings.auth_org_claim) == (
        "claim",
        "organizationRole",
        "activeOrganizationId",
    )


def test_quota_shard_layouts_are_read_and_a_malformed_one_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATBOT_QUOTA_SHARDS", "2026-12-01:64/8")
    assert Settings().quota_layouts.entries[0][1].global_shards == 64
    monkeypatch.setenv("CHATBOT_QUOTA_SHARDS", "2026-12-01:64")
    with pytest.raises(ValueError, match="chatbot_quota_shards"):
        Settings()

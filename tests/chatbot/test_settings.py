"""Settings: read once from the environment, with the documented defaults, secrets that never print."""

from __future__ import annotations

import pytest
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


def test_quota_shard_layouts_are_read_and_a_malformed_one_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHATBOT_QUOTA_SHARDS", "2026-12-01:64/8")
    assert Settings().quota_layouts.entries[0][1].global_shards == 64
    monkeypatch.setenv("CHATBOT_QUOTA_SHARDS", "2026-12-01:64")
    with pytest.raises(ValueError, match="chatbot_quota_shards"):
        Settings()

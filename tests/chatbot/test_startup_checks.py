"""Start-up checks: an impossible combination of settings stops the app with a message naming the variables."""

from __future__ import annotations

from typing import Any

import pytest
from chatbot.app import create_app
from chatbot.errors import ConfigurationError
from chatbot.settings import Settings

GOOD_SECRET = "s" * 32


def settings(**values: Any) -> Settings:
    return Settings(**{"auth_jwt_secret": GOOD_SECRET, **values})


async def start(app_settings: Settings) -> None:
    app = create_app(app_settings)
    async with app.router.lifespan_context(app):
        pass


def test_sound_settings_have_no_problems() -> None:
    assert settings().problems() == []
    assert settings(chatbot_function_timeout_seconds=300).problems() == []


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"auth_jwks_url": "https://idp.example/jwks"}, ["AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"]),
        (
            {"auth_jwks_url": "https://idp.example/jwks", "auth_issuer": "https://idp.example"},
            ["AUTH_AUDIENCE"],
        ),
        ({"auth_jwt_secret": "x"}, ["AUTH_JWT_SECRET", "32"]),
        (
            {"chatbot_request_timeout_seconds": 300},
            ["CHATBOT_REQUEST_TIMEOUT_SECONDS", "CHATBOT_LOCK_TTL_SECONDS"],
        ),
        (
            {"chatbot_function_timeout_seconds": 242},
            ["CHATBOT_REQUEST_TIMEOUT_SECONDS", "CHATBOT_FUNCTION_TIMEOUT_SECONDS"],
        ),
    ],
)
def test_an_impossible_combination_is_named(values: dict[str, Any], named: list[str]) -> None:
    [problem] = settings(**values).problems()
    for name in named:
        assert name in problem


async def test_the_app_refuses_to_start_with_a_jwks_url_but_no_issuer_or_audience() -> None:
    # Found in review: a token with aud=another-app from another issuer was accepted.
    with pytest.raises(ConfigurationError, match="AUTH_ISSUER"):
        await start(Settings(auth_jwks_url="https://idp.example/jwks"))


async def test_the_app_refuses_to_start_with_a_short_hs256_secret() -> None:
    # Found in review: a 1-byte secret was accepted.
    with pytest.raises(ConfigurationError, match="AUTH_JWT_SECRET"):
        await start(Settings(auth_jwt_secret="k"))


async def test_the_app_refuses_to_start_when_the_deadline_outlives_the_lock_or_the_function() -> None:
    with pytest.raises(ConfigurationError, match="CHATBOT_LOCK_TTL_SECONDS") as lock:
        await start(settings(chatbot_request_timeout_seconds=400))
    with pytest.raises(ConfigurationError, match="CHATBOT_FUNCTION_TIMEOUT_SECONDS"):
        await start(settings(chatbot_function_timeout_seconds=120))
    assert "400" in str(lock.value)


def test_cleanup_after_the_deadline_cannot_outlive_the_function() -> None:
    assert settings().cleanup_seconds == 10
    assert settings(chatbot_function_timeout_seconds=900).cleanup_seconds == 10
    tight = settings(chatbot_function_timeout_seconds=248)
    assert tight.cleanup_seconds == 4
    assert tight.chatbot_request_timeout_seconds + tight.cleanup_seconds < 248

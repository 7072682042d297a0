"""Secrets named by ARN are read from Secrets Manager while the app starts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from chatbot.credentials import resolve
from chatbot.errors import SecretUnavailable
from chatbot.settings import Settings
from moto import mock_aws


@pytest.fixture
def secretsmanager() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")


def test_secrets_named_by_arn_fill_the_api_key_and_the_jwt_secret(secretsmanager: Any) -> None:
    api = secretsmanager.create_secret(Name="api", SecretString=" sk-ant-1\n")["ARN"]
    jwt = secretsmanager.create_secret(Name="jwt", SecretString="signing-secret")["ARN"]
    settings = resolve(Settings(anthropic_api_key_secret_arn=api, auth_jwt_secret_arn=jwt))
    assert settings.anthropic_api_key is not None and settings.auth_jwt_secret is not None
    assert settings.anthropic_api_key.get_secret_value() == "sk-ant-1"
    assert settings.auth_jwt_secret.get_secret_value() == "signing-secret"
    assert settings.enabled


def test_a_value_already_set_wins_over_its_secret(secretsmanager: Any) -> None:
    api = secretsmanager.create_secret(Name="api", SecretString="from-secret")["ARN"]
    settings = resolve(Settings(anthropic_api_key="from-env", anthropic_api_key_secret_arn=api))
    assert settings.anthropic_api_key is not None
    assert settings.anthropic_api_key.get_secret_value() == "from-env"


def test_without_secret_arns_nothing_is_read() -> None:
    class NoCalls:
        def get_secret_value(self, **kwargs: Any) -> Any:
            raise AssertionError("no secret should be read")

    settings = Settings(anthropic_api_key="key")
    assert resolve(settings, client=NoCalls()) is settings


def test_an_empty_secret_fails_the_start_up(secretsmanager: Any) -> None:
    api = secretsmanager.create_secret(Name="api", SecretString="  ")["ARN"]
    with pytest.raises(SecretUnavailable, match="no plain-text value"):
        resolve(Settings(anthropic_api_key_secret_arn=api))

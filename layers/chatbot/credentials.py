"""Secrets read from AWS Secrets Manager once, while the app starts.

Deployed, the function's configuration names secrets (`ANTHROPIC_API_KEY_SECRET_ARN`,
`AUTH_JWT_SECRET_ARN`) instead of holding their values, where anyone allowed to read the configuration
could see them. They are read in the app's lifespan, in the process that serves, rather than by a second
Python started from run.sh: that one paid a whole interpreter start and boto3 import on every cold start.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from .aws import secrets_client
from .errors import SecretUnavailable
from .settings import Settings

# Settings field filled from a secret ← the field naming that secret's ARN.
SECRET_FIELDS = {
    "anthropic_api_key": "anthropic_api_key_secret_arn",
    "auth_jwt_secret": "auth_jwt_secret_arn",
}


def resolve(settings: Settings, client: Any = None) -> Settings:
    """`settings` with each secret whose ARN is configured, and whose value is not already set, read from
    Secrets Manager (blocking; run it in a thread). Unchanged when no secret is configured."""
    wanted = {
        field: arn
        for field, arn_field in SECRET_FIELDS.items()
        if (arn := getattr(settings, arn_field)) and getattr(settings, field) is None
    }
    if not wanted:
        return settings
    client = client or secrets_client(settings)
    values: dict[str, SecretStr] = {}
    for field, arn in wanted.items():
        try:
            value = str(client.get_secret_value(SecretId=arn).get("SecretString") or "").strip()
        except (BotoCoreError, ClientError) as error:
            # Unreachable (no route from the VPC: see CreateVpcEndpoints), denied, or missing.
            raise SecretUnavailable(f"the secret {arn} ({field}) could not be read: {error}") from error
        if not value:
            raise SecretUnavailable(f"the secret {arn} ({field}) has no plain-text value")
        values[field] = SecretStr(value)
    return settings.model_copy(update=values)

"""AWS clients, created once per process with settings that fail fast."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from .settings import Settings

DYNAMODB_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    # Retries are `dynamodb.RETRY`'s alone: boto3 retrying inside a call as well would multiply the attempts
    # and the waits of an outage, and repeat writes that are not idempotent.
    retries={"total_max_attempts": 1},
    max_pool_connections=100,
    # Our requests are built by code, not typed by people; validating every parameter of every call costs
    # CPU on the path to the first token (docs/BENCHMARKS.md) and catches nothing DynamoDB would not refuse.
    parameter_validation=False,
)


def dynamodb_client(settings: Settings) -> Any:
    """One boto3 DynamoDB client for the process (an outage fails fast: 503)."""
    return boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url_dynamodb,
        config=DYNAMODB_CONFIG,
    )

"""AWS clients, created once per process with settings that fail fast.

Every client shares `FAIL_FAST`: botocore's defaults wait 60 s to connect and 60 s to read, and retry on
top. A function in private subnets with no route to an AWS endpoint (no NAT, no VPC endpoint) then spent
minutes on one call: the start overran Lambda's 10 s init, and every request hung until the function
timeout. With these bounds an unreachable service is an error within seconds (the start fails and
Lambda says why; a request answers 503).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from .settings import Settings

FAIL_FAST = Config(connect_timeout=2, read_timeout=5)
"""The bounds of every AWS call: a reachable endpoint connects within milliseconds and answers these
small requests within a second."""

DYNAMODB_CONFIG = FAIL_FAST.merge(
    Config(
        # Retries are `dynamodb.RETRY`'s alone: boto3 retrying inside a call as well would multiply the
        # attempts and the waits of an outage, and repeat writes that are not idempotent.
        retries={"total_max_attempts": 1},
        max_pool_connections=100,
        # Our requests are built by code, not typed by people; validating every parameter of every call
        # costs CPU on the path to the first token (docs/BENCHMARKS.md) and catches nothing DynamoDB would
        # not refuse.
        parameter_validation=False,
    )
)

SECRETS_CONFIG = FAIL_FAST.merge(
    Config(
        # Read once at start, within Lambda's 10 s init: one retry (for a blip), read bounded tighter than
        # DynamoDB's so two attempts at an endpoint that never answers still end well inside the init.
        read_timeout=3,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
)


def dynamodb_client(settings: Settings) -> Any:
    """One boto3 DynamoDB client for the process (an outage fails fast: 503)."""
    return boto3.client(
        "dynamodb",
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url_dynamodb,
        config=DYNAMODB_CONFIG,
    )


def secrets_client(settings: Settings) -> Any:
    """A Secrets Manager client for reading the secrets at start (an unreachable service fails the start
    within seconds)."""
    return boto3.client("secretsmanager", region_name=settings.aws_region, config=SECRETS_CONFIG)

"""Fixtures of the security suite: the same live server and backing services as the reliability suite."""

from tests.reliability.conftest import (
    dynamodb_endpoint,
    dynamodb_server,
    fake_anthropic,
    private_redis,
    server,
    start_server,
)

__all__ = [
    "dynamodb_endpoint",
    "dynamodb_server",
    "fake_anthropic",
    "private_redis",
    "server",
    "start_server",
]

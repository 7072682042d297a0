"""Fixtures every test layer shares: a real Redis, and an isolated environment."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.processes import stop

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def _redis_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: the machine's at 127.0.0.1:6379, else one started here, else the test is skipped."""
    if _redis_reachable(REDIS_HOST, REDIS_PORT):
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("no Redis at 127.0.0.1:6379 and no redis-server binary to start one")
    port = 6390
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not _redis_reachable(REDIS_HOST, port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.skip("redis-server could not be started")
        time.sleep(0.05)
    try:
        yield f"redis://{REDIS_HOST}:{port}/0"
    finally:
        stop(proc)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own environment (and any real keys) out of every test."""
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "REDIS_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AUTH_JWKS_URL",
        "AUTH_ISSUER",
        "AUTH_AUDIENCE",
        "AUTH_ORG_CLAIM",
        "AUTH_ROLE_CLAIM",
        "CHATBOT_ROLE_SOURCE",
        "CHATBOT_ROLES",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Chatbot")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-soak", action="store_true", default=False, help="also run tests marked soak (make soak)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Soak-sized runs are skipped unless `--run-soak` is given, so `make test` stays fast."""
    if config.getoption("--run-soak"):
        return
    skip = pytest.mark.skip(reason="soak-sized run: give --run-soak (make soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)

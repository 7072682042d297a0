"""Fixtures for the remote-tool tests: the fake MCP server, the reference server and the example app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chatbot.settings import McpServerConfig

from tests.fakes.mcp_server import FakeMcpServer
from tests.reference.servers import everything_server, example_app

SECRET = "remote-tools-secret-remote-tools-secret"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake_mcp() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server


@pytest.fixture(scope="session")
def everything_url() -> Iterator[str]:
    with everything_server() as url:
        yield url


@pytest.fixture
def example_url(tmp_path: Path) -> Iterator[str]:
    with example_app(SECRET, tmp_path / "projects.sqlite") as (url, _):
        yield url


def server(name: str, url: str, auth: str = "none", timeout: float = 5) -> McpServerConfig:
    return McpServerConfig(name=name, url=url, auth=auth, timeout_seconds=timeout)  # type: ignore[arg-type]

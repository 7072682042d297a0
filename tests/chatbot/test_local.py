"""Local mode's loopback check: which `Host` headers name this machine."""

from __future__ import annotations

import pytest
from chatbot.local import loopback_host


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:3000", "localhost", "LOCALHOST:3000", "[::1]", "[::1]:3000"]
)
def test_loopback_names_with_or_without_a_port_are_accepted(host: str) -> None:
    assert loopback_host(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "evil.example:3000",
        "127.0.0.1.evil.example",
        "localhost.evil.example",
        "[::2]",
        "[::1",
    ],
)
def test_any_other_host_is_refused(host: str | None) -> None:
    assert not loopback_host(host)

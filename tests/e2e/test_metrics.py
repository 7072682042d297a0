"""The metric names real requests emit are all found by reading the code (tests/deploy/metric_names.py), so
the template test that compares the dashboard and the alarms with that reading misses none."""

from __future__ import annotations

import json

import pytest

from tests.deploy.metric_names import code_metric_names
from tests.e2e.conftest import LiveServer
from tests.fakes.anthropic_api import FakeAnthropic, Reply


def emitted(out: str) -> set[str]:
    """Metric names in the CloudWatch EMF lines of `out`."""
    names: set[str] = set()
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            for directive in json.loads(line)["_aws"]["CloudWatchMetrics"]:
                names |= {metric["Name"] for metric in directive["Metrics"]}
    return names


async def test_every_metric_a_request_emits_is_one_the_code_reading_finds(
    server: LiveServer, fake_anthropic: FakeAnthropic, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_anthropic.enqueue(Reply.tool_use("member_list", {}), Reply.text("Alice and Bob."))
    assert (await server.message("who is here?")).last["type"] == "done"
    async with server.client() as client:
        refused = await client.post(
            "/api/chatbot/message", json={"message": "hi"}, headers=server.auth(user="user_erin")
        )
    assert refused.status_code == 403

    names = emitted(capsys.readouterr().out)
    literal, expanded = code_metric_names()
    assert {"Requests", "ToolCalls", "InputTokens", "TimeToFirstToken", "Refused_forbidden"} <= names
    assert sorted(names - literal - expanded) == []

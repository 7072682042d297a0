"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned with its Node 22 in
tests/conformance/package-lock.json) against `POST /mcp` of the app under uvicorn, through a local proxy
that adds the bearer token the suite cannot send.

It runs the server scenarios that apply to a stateless server that offers only tools (README, "MCP clients"):
the others need fixture tools, prompts, resources, logging, completions, server-to-client requests or
session streams, none of which this server has.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path

import pytest

from tests.conformance.token_proxy import RunningProxy
from tests.e2e.conftest import LiveServer

HERE = Path(__file__).resolve().parents[1] / "conformance"
SUITE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE = (
    HERE
    / "node_modules"
    / f"node-linux-{'arm64' if platform.machine() in ('aarch64', 'arm64') else 'x64'}"
    / "bin"
    / "node"
)
SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")
RUN_SECONDS = 90


def run_scenarios(url: str, out: Path) -> dict[str, tuple[int, str, list[dict[str, object]]]]:
    """Each scenario's exit status, output and checks; the scenarios run at the same time."""
    if not (NODE.exists() and SUITE.exists()):
        pytest.fail(
            "the conformance suite is not installed: run `make conformance` (npm ci in tests/conformance)"
        )
    running = {
        scenario: subprocess.Popen(
            [
                str(NODE),
                str(SUITE),
                "server",
                "--url",
                url,
                "--scenario",
                scenario,
                "-o",
                str(out / scenario),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for scenario in SCENARIOS
    }
    results = {}
    for scenario, process in running.items():
        output, _ = process.communicate(timeout=RUN_SECONDS)
        checks = [json.loads(path.read_text()) for path in (out / scenario).glob("*/checks.json")]
        results[scenario] = (process.returncode, output, [check for found in checks for check in found])
    return results


def test_the_mcp_endpoint_passes_the_scenarios_of_a_stateless_tools_only_server(
    server: LiveServer, tmp_path: Path
) -> None:
    with RunningProxy(server.base_url, server.token("user_alice", "org_acme")) as proxy:
        results = run_scenarios(f"{proxy.url}/mcp", tmp_path)
    for scenario, (status, output, checks) in results.items():
        assert status == 0, f"{scenario} failed:\n{output}"
        assert checks and all(check["status"] == "SUCCESS" for check in checks), f"{scenario}:\n{output}"
    listed = next(check for check in results["tools-list"][2] if check["id"] == "tools-list")
    assert listed["details"]["toolCount"] == 8  # type: ignore[index]  # the admin's whole list, so the token arrived
    rebinding = {str(check["id"]): check["details"] for check in results["dns-rebinding-protection"][2]}
    assert rebinding["localhost-host-rebinding-rejected"]["statusCode"] == 400  # type: ignore[index]

"""Tracing costs nothing when off: the SDK, the exporter, the X-Ray propagator and our tracing module are
not imported by the app (a fresh interpreter, as a cold start is)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TRACING_MODULES = (
    "chatbot.tracing",
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.propagators.aws",
)

PROBE = f"""
import json, sys
from chatbot.app import create_app
from chatbot.settings import Settings
create_app(Settings())
print(json.dumps(sorted({{m.split(".")[0] + "." + m.split(".")[1] if "." in m else m
    for m in sys.modules if m.startswith({TRACING_MODULES!r})}})))
"""


def loaded_tracing_modules(tracing: str) -> list[str]:
    env = {**os.environ, "CHATBOT_TRACING": tracing}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_with_tracing_off_the_app_never_imports_the_exporter_the_propagator_or_the_tracing_module() -> None:
    # redis-py (8.x) imports `opentelemetry.sdk.metrics` by itself whenever the SDK is installed (its own
    # optional metrics), and the app imports redis-py for the lock, the journal and the MCP rate: that much
    # of the SDK is loaded either way. What tracing adds on top stays unloaded.
    assert [m for m in loaded_tracing_modules("false") if m != "opentelemetry.sdk"] == []


def test_with_tracing_on_the_app_loads_the_sdk_and_the_xray_propagator() -> None:
    assert loaded_tracing_modules("true") == [
        "chatbot.tracing",
        "opentelemetry.exporter",
        "opentelemetry.propagators",
        "opentelemetry.sdk",
    ]

"""The layer is built from layers/requirements.txt, so it must pin exactly what uv.lock resolves."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPORT = ["export", "--no-dev", "--no-hashes", "--no-emit-project", "--frozen", "--quiet"]


def _uv() -> str:
    """The project's uv (make installs it in .tools), else one on PATH."""
    for candidate in (ROOT / ".tools" / "bin" / "uv", shutil.which("uv")):
        if candidate is not None and os.access(candidate, os.X_OK):
            return str(candidate)
    raise AssertionError("uv is needed to check layers/requirements.txt against uv.lock: run `make build`")


def _requirements(text: str) -> list[str]:
    # Comment lines (the header naming the command, `# via` notes) carry no pins.
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_layer_requirements_pin_exactly_the_locked_runtime_dependencies() -> None:
    exported = subprocess.run([_uv(), *EXPORT], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    committed = (ROOT / "layers" / "requirements.txt").read_text()
    assert _requirements(committed) == _requirements(exported), (
        "layers/requirements.txt is out of sync with uv.lock: run `make requirements`"
    )


def test_layer_requirements_pin_runtime_packages_and_leave_out_development_ones() -> None:
    lines = _requirements((ROOT / "layers" / "requirements.txt").read_text())
    assert all("==" in line for line in lines), lines
    names = {line.split("==")[0].strip().lower() for line in lines}
    assert {"anthropic", "mcp", "starlette", "uvicorn", "boto3", "redis", "pyjwt"} <= names
    # Test tools and the local-only extras (moto) stay out; the project itself ships as layer source.
    assert names.isdisjoint({"pytest", "moto", "playwright", "ruff", "mypy", "hypothesis", "chatbot"})

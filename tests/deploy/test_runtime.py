"""One Lambda runtime everywhere: the layer's compiled wheels are built for the runtime they run on, so
every place that names a default must name the same one."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.deploy.cloudformation import ROOT, load


def _make_default(makefile: Path, variable: str) -> str:
    match = re.search(rf"^{variable} \?= (\S+)$", makefile.read_text(), re.MULTILINE)
    assert match is not None, f"{makefile.relative_to(ROOT)} sets no default for {variable}"
    return match.group(1)


def _samconfig_override(command: str, parameter: str) -> str:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = config["default"][command]["parameters"].get("parameter_overrides", "")
    match = re.search(rf"\b{parameter}=(\S+)", overrides)
    assert match is not None, f"samconfig.toml's [default.{command}.parameters] does not set {parameter}"
    return match.group(1)


def test_make_sam_build_and_deploy_default_to_one_runtime_and_architecture() -> None:
    template = load()["Parameters"]
    for parameter, variable in (("PythonRuntime", "PYTHON_RUNTIME"), ("Architecture", "ARCHITECTURE")):
        defaults = {
            "template.yaml": str(template[parameter]["Default"]),
            "Makefile": _make_default(ROOT / "Makefile", variable),
            "layers/Makefile": _make_default(ROOT / "layers" / "Makefile", variable),
            "samconfig.toml build": _samconfig_override("build", parameter),
            "samconfig.toml deploy": _samconfig_override("deploy", parameter),
        }
        assert len(set(defaults.values())) == 1, f"{parameter} defaults differ: {defaults}"


def test_the_default_runtime_is_python3_13() -> None:
    # python3.11 runs on Amazon Linux 2 (end of life 2026-06-30) and has no SnapStart.
    assert load()["Parameters"]["PythonRuntime"]["Default"] == "python3.13"


def test_the_layer_is_built_by_its_makefile_for_the_runtime_parameter() -> None:
    """BuildMethod python3.X builds with the local python3.X, so a 3.11 machine could not build for 3.13;
    the makefile has pip fetch the target's wheels instead."""
    layer = load()["Resources"]["ChatbotLayer"]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    recipe = (ROOT / "layers" / "Makefile").read_text()
    for flag in ("--python-version", "--platform", "--only-binary=:all:", "--abi", "--target"):
        assert flag in recipe, f"layers/Makefile's pip install lacks {flag}"

"""The metric names the code emits, read from the code itself, and the metric names the template's dashboard
and alarms use, read from template.yaml.

The code's names are found by reading every call of an emitter (a public method of `RequestMetrics`, or a
public function of `observability`): its first argument is a string, a module-level string constant, or an
f-string such as `f"Error_{exc.code}"`, whose placeholder stands for any wire code in `errors.py`.
`tests/e2e/test_metrics.py` checks that this reading finds every name a real request emits.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml
from chatbot import errors, observability

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "chatbot"
TEMPLATE = ROOT / "template.yaml"


def emitters() -> tuple[set[str], set[str]]:
    """(methods of `RequestMetrics`, functions of `observability`) that emit a metric."""
    methods = {
        name for name, _ in inspect.getmembers(observability.RequestMetrics) if not name.startswith("_")
    }
    functions = {
        name
        for name, value in vars(observability).items()
        if inspect.isfunction(value)
        and value.__module__ == observability.__name__
        and not name.startswith("_")
    }
    return methods - {"flush"}, functions - {"log_context"}


def error_codes() -> set[str]:
    """Every wire code of the error table."""
    return {
        cls.code
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, errors.ChatbotError) and isinstance(cls.code, str)
    }


def _constants(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _imported_from_observability(tree: ast.Module) -> set[str]:
    return {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("observability")
        for alias in node.names
    }


def _emits(func: ast.expr, methods: set[str], functions: set[str], tree: ast.Module, path: Path) -> bool:
    """Whether a call of `func` in `path` is a call of an emitter."""
    in_observability = path.name == "observability.py"
    if isinstance(func, ast.Name):
        return func.id in functions and (in_observability or func.id in _imported_from_observability(tree))
    if not isinstance(func, ast.Attribute) or func.attr not in methods:
        return False
    receiver = ast.unparse(func.value)
    if in_observability and receiver in ("cls", "self", "metrics"):
        return True
    return receiver == "RequestMetrics" or receiver.lower().endswith("metrics")


def code_metric_names() -> tuple[set[str], set[str]]:
    """(literal names, names from f-strings expanded over every error code) the code can emit."""
    methods, functions = emitters()
    files = list(PACKAGE.rglob("*.py"))
    constants: dict[str, str] = {}
    trees = {path: ast.parse(path.read_text()) for path in files}
    for tree in trees.values():
        constants.update(_constants(tree))
    literal: set[str] = set()
    expanded: set[str] = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            if not _emits(node.func, methods, functions, tree, path):
                continue
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                literal.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                literal.add(constants[first.id])
            elif isinstance(first, ast.JoinedStr):
                prefix = "".join(v.value for v in first.values if isinstance(v, ast.Constant))
                expanded |= {prefix + code for code in error_codes()}
    return literal, expanded


def template() -> Any:
    """template.yaml, with CloudFormation's short forms read as their long forms."""
    return cfn_yaml.load(str(TEMPLATE))


def resources_of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in template()["Resources"].items() if r["Type"] == kind}


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric name, dimensions) of every graph of every dashboard; `${Resource}` left as is."""
    found = []
    for dashboard in resources_of_type("AWS::CloudWatch::Dashboard").values():
        body = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
        for widget in json.loads(body)["widgets"]:
            for metric in widget["properties"].get("metrics", []):
                parts = [p for p in metric if isinstance(p, str)]
                namespace, name, *dims = parts
                found.append((namespace, name, dict(zip(dims[::2], dims[1::2], strict=True))))
    return found


def alarm_metrics() -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Alarm name → (namespace, metric name, dimensions) of each metric it watches."""
    found: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for name, alarm in resources_of_type("AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        if "MetricName" in props:
            specs = [props]
        else:
            specs = [q["MetricStat"]["Metric"] for q in props["Metrics"] if "MetricStat" in q]
        found[name] = [
            (s["Namespace"], s["MetricName"], {d["Name"]: d["Value"] for d in s.get("Dimensions", [])})
            for s in specs
        ]
    return found


SUB_REFERENCE = re.compile(r"^\$\{([A-Za-z0-9]+)\}$")

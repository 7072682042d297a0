"""Just enough of CloudFormation to test template.yaml offline: a YAML loader that keeps the short-form
tags (`!Ref`, `!Sub`, `!GetAtt`...) as their long forms, and an evaluator of conditions, rules and
property values for given parameter values, region and partition."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `!Name value` as `{"Fn::Name": value}` (`!Ref`/`!Condition` keep their names)."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain data, intrinsic functions in their long form."""
    data = yaml.load(path.read_text(), Loader=_Loader)
    assert isinstance(data, dict)
    return data


NO_VALUE = object()
"""`AWS::NoValue`: the property or list element is left out."""


@dataclass
class Stack:
    """The template evaluated for parameter values (the rest take their defaults), a region and partition."""

    template: dict[str, Any]
    parameters: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"
    partition: str = "aws"

    def __post_init__(self) -> None:
        declared = self.template["Parameters"]
        unknown = set(self.parameters) - set(declared)
        assert not unknown, f"not parameters of the template: {unknown}"
        self.values: dict[str, Any] = {}
        for name, spec in declared.items():
            raw = str(self.parameters.get(name, spec.get("Default", "")))
            if "AllowedValues" in spec:
                assert raw in [str(v) for v in spec["AllowedValues"]], f"{name}={raw!r} is not allowed"
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], raw), f"{name}={raw!r} fails its pattern"
            is_list = spec["Type"] == "CommaDelimitedList"
            self.values[name] = raw.split(",") if is_list else raw
        self.values |= {
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "chatbot",
            "AWS::NoValue": NO_VALUE,
        }

    def condition(self, name: str) -> bool:
        """The value of the named condition."""
        return bool(self.resolve(self.template["Conditions"][name]))

    def broken_rules(self) -> list[str]:
        """The AssertDescription of every rule assertion that fails (CloudFormation refuses the stack)."""
        broken = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            broken += [a["AssertDescription"] for a in rule["Assertions"] if not self.resolve(a["Assert"])]
        return broken

    def resource(self, logical_id: str) -> dict[str, Any] | None:
        """The resource's properties evaluated, or None when its condition leaves it out."""
        resource = self.template["Resources"][logical_id]
        if "Condition" in resource and not self.condition(resource["Condition"]):
            return None
        properties = self.resolve(resource.get("Properties", {}))
        assert isinstance(properties, dict)
        return properties

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function this template uses evaluated."""
        if isinstance(value, list):
            return [v for v in (self.resolve(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, arg)] = value.items()
            if key == "Ref":
                if arg in self.values:
                    return self.values[arg]
                assert arg in self.template["Resources"], f"Ref to unknown {arg}"
                return f"<{arg}>"
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                name, then, otherwise = arg
                return self.resolve(then if self.condition(name) else otherwise)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(arg))
            if key == "Fn::Or":
                return any(self.resolve(arg))
            if key == "Fn::Contains":
                items, item = self.resolve(arg)
                return item in items
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(self.resolve(items))
            if key == "Fn::Select":
                index, items = self.resolve(arg)
                return items[int(index)]
            if key == "Fn::FindInMap":
                name, top, second = self.resolve(arg)
                return self.template["Mappings"][name][top][second]
            if key == "Fn::GetAtt":
                return f"<{arg[0]}.{arg[1]}>"
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return re.sub(r"\$\{([^}]+)\}", lambda m: self._sub(m.group(1), extra), text)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _sub(self, name: str, extra: dict[str, Any]) -> str:
        if name in extra:
            return str(extra[name])
        if name in self.values:
            return str(self.values[name])
        resource, _, attribute = name.partition(".")
        assert resource in self.template["Resources"], f"${{{name}}} names nothing"
        return f"<{resource}.{attribute}>" if attribute else f"<{resource}>"

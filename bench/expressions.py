"""DynamoDB update and condition expressions, evaluated on plain items (`{"name": {"N": "1"}}`), for the
benchmark's stand-ins of DynamoDB (the lean server and the simulation).

Only what the app sends: `SET a = :v, ...`, `ADD a :n, ...`, `REMOVE a, ...` in one expression;
conditions made of `attribute_exists(a)`, `attribute_not_exists(a)`, `a = :v`, `a <= :v`, `AND`, `OR`,
`NOT` and parentheses. Anything else raises `Unsupported`, so a gap cannot pass unnoticed. The simulation's
test checks these against moto on the ledger's own writes.
"""

from __future__ import annotations

import re
from typing import Any

Item = dict[str, Any]

_TOKEN = re.compile(r"\s*(\(|\)|,|<=|>=|<>|=|<|>|[#:]?[A-Za-z_][\w.#:~-]*)")


class Unsupported(Exception):
    """An expression outside the subset the app uses."""


def _tokens(text: str) -> list[str]:
    found, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Unsupported(f"cannot read {text[pos:]!r}")
        found.append(m.group(1))
        pos = m.end()
    return found


def _number(value: Item) -> int:
    return int(value["N"])


_TOKENS_CACHE: dict[str, list[str]] = {}


class _Condition:
    def __init__(self, text: str, names: dict[str, str], values: dict[str, Item]) -> None:
        tokens = _TOKENS_CACHE.get(text)
        if tokens is None:
            tokens = _TOKENS_CACHE[text] = _tokens(text)
        self.tokens, self.pos = tokens, 0
        self.names, self.values = names, values

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token.upper() != expected:
            raise Unsupported(f"expected {expected}, found {token}")
        self.pos += 1
        return token

    def name(self, token: str) -> str:
        return self.names.get(token, token)

    def evaluate(self, item: Item) -> bool:
        result = self.disjunction(item)
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()}")
        return result

    def disjunction(self, item: Item) -> bool:
        result = self.conjunction(item)
        while (self.peek() or "").upper() == "OR":
            self.take()
            right = self.conjunction(item)
            result = result or right
        return result

    def conjunction(self, item: Item) -> bool:
        result = self.factor(item)
        while (self.peek() or "").upper() == "AND":
            self.take()
            right = self.factor(item)
            result = result and right
        return result

    def factor(self, item: Item) -> bool:
        token = self.take()
        if token.upper() == "NOT":
            return not self.factor(item)
        if token == "(":
            result = self.disjunction(item)
            self.take(")")
            return result
        if token in ("attribute_exists", "attribute_not_exists"):
            self.take("(")
            present = self.name(self.take()) in item
            self.take(")")
            return present if token == "attribute_exists" else not present
        attribute = item.get(self.name(token))
        operator = self.take()
        value = self.values[self.take()]
        if attribute is None:
            return False
        if operator == "=":
            return bool(attribute == value)
        if operator == "<>":
            return bool(attribute != value)
        if operator in ("<=", "<", ">=", ">"):
            a, b = _number(attribute), _number(value)
            return {"<=": a <= b, "<": a < b, ">=": a >= b, ">": a > b}[operator]
        raise Unsupported(f"operator {operator}")


def condition_holds(item: Item | None, request: Item) -> bool:
    """Whether `request`'s `ConditionExpression` holds for `item` (None: no such item)."""
    text = str(request.get("ConditionExpression") or "").strip()
    if not text:
        return True
    parser = _Condition(
        text, request.get("ExpressionAttributeNames", {}), request.get("ExpressionAttributeValues", {})
    )
    return parser.evaluate(item or {})


_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE)\b")


def apply_update(item: Item, request: Item) -> list[str]:
    """Apply `request`'s `UpdateExpression` to `item` in place; the names of the attributes it set or added."""
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    text = str(request["UpdateExpression"]).strip()
    parts = _CLAUSE.split(text)
    if parts[0].strip():
        raise Unsupported(f"unsupported update {text!r}")
    touched: list[str] = []
    for keyword, body in zip(parts[1::2], parts[2::2], strict=True):
        for clause in (c.strip() for c in body.split(",")):
            if not clause:
                continue
            if keyword == "SET":
                name, value = (s.strip() for s in clause.split("=", 1))
                if not value.startswith(":"):
                    raise Unsupported(f"SET {clause!r}: only values")
                item[names.get(name, name)] = values[value]
                touched.append(names.get(name, name))
            elif keyword == "ADD":
                name, value = clause.split()
                attribute = names.get(name, name)
                current = _number(item[attribute]) if attribute in item else 0
                item[attribute] = {"N": str(current + _number(values[value]))}
                touched.append(attribute)
            else:
                item.pop(names.get(clause, clause), None)
    return touched


def item_size(item: Item) -> int:
    """An item's size as DynamoDB bills it (close enough): attribute names plus values, numbers about one
    byte per two digits plus one."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if "S" in value:
            size += len(str(value["S"]).encode())
        elif "N" in value:
            digits = len(str(value["N"]).lstrip("-").replace(".", "").lstrip("0")) or 1
            size += (digits + 1) // 2 + 1
        else:
            size += len(str(value))
    return size

"""What a tool is to the chatbot, wherever it comes from (built in, or a remote MCP server), and what a
call of one gives back: the parts every tool source shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp.types import ToolAnnotations

from ..permissions import Caller
from ..unicode import well_formed

PERMISSION_META_KEY = "chatbot.app/permission"
"""The `_meta` key of a tool's permission (`resource:action`), built in or remote."""

BUILTIN = ""
"""The `source` of a built-in tool (a remote tool's is its server's name)."""


@dataclass(frozen=True)
class Tool:
    """A tool as offered to the model: the name it sees, what it is told, what the approval policy and the
    permission check read, and where calls go."""

    name: str
    description: str
    input_schema: dict[str, Any]
    annotations: ToolAnnotations | None
    permission: str | None
    """`resource:action`, or None for a remote tool without one (its server enforces its own rules)."""
    source: str = BUILTIN
    remote_name: str = ""
    """Its own name on its server (a remote tool is offered as `<server>_<name>`)."""
    title: str | None = None

    @property
    def read_only(self) -> bool:
        """Whether its annotations say it changes nothing."""
        return bool(self.annotations and self.annotations.read_only_hint)


@dataclass(frozen=True)
class ToolResult:
    """A tool call's outcome for the model. `status` says why a call did not run, where that matters
    (`not_permitted`, `declined`); otherwise the outcome follows `is_error`."""

    is_error: bool
    content: str  # text for the model (JSON text for structured results)
    status: str = ""

    def __post_init__(self) -> None:
        # A tool's text comes from outside (a stored name, a remote server): keep it encodable.
        object.__setattr__(self, "content", well_formed(self.content))

    @property
    def outcome(self) -> str:
        """`ok`, `error`, `not_permitted` or `declined`: the status the audit trail and the views record."""
        return self.status or ("error" if self.is_error else "ok")


def capped(is_error: bool, text: str, max_chars: int) -> ToolResult:
    """`text` as a result of at most `max_chars` characters; a longer one is cut, says so, and is an error
    (the model must not take a part for the whole)."""
    if len(text) <= max_chars:
        return ToolResult(is_error, text)
    marker = f"\n[TRUNCATED: first {{}} of {len(text)} characters shown; ask for less.]"
    keep = max(max_chars - len(marker.format(max_chars)), 0)
    return ToolResult(True, text[:keep] + marker.format(keep))


def not_permitted(caller: Caller, name: str, permission: str) -> str:
    """The refusal text for a tool the caller's role does not allow."""
    return f"Not permitted: {name} needs {permission}, which the role {caller.role} does not have."


def argument_problem(tool: Tool, arguments: object, *, closed: bool = True) -> str | None:
    """Why `arguments` cannot be passed to `tool` (not an object; with `closed`, names its schema does not
    list), or None."""
    if not isinstance(arguments, dict) or not all(isinstance(key, str) for key in arguments):
        return f"Invalid arguments for {tool.name}: they must be a JSON object."
    if not closed:
        return None
    unknown = sorted(set(arguments) - set(tool.input_schema.get("properties", {})))
    if not unknown:
        return None
    hint = " The organization is always your own; it is not an argument." if "org_id" in unknown else ""
    return f"Invalid arguments for {tool.name}: unknown {', '.join(unknown)}.{hint}"


def compact_schema(schema: Any) -> Any:
    """`schema` without what only costs the model tokens: pydantic's `title`s, and the `null` branch and
    `default: null` of optional properties (leaving an optional property out means the same)."""
    if isinstance(schema, list):
        return [compact_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    any_of = schema.get("anyOf")
    null = {"type": "null"}
    if isinstance(any_of, list) and len(any_of) == 2 and null in any_of and schema.get("default", 0) is None:
        rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
        schema = {**next(branch for branch in any_of if branch != null), **rest}
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            cleaned[key] = {prop: compact_schema(sub) for prop, sub in value.items()}
        else:
            cleaned[key] = compact_schema(value)
    return cleaned

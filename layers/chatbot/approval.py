"""Approval of changes: which tool calls wait for the user, the record of a waiting call, and the checks a
decision must pass.

Whether a call waits is decided from the tool's MCP annotations and `CHATBOT_APPROVAL`, never from what
the model says: `writes` (the default) holds every tool not annotated read-only; `destructive` holds the
tools whose `destructiveHint` is true or missing (the MCP default); `none` holds nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcp.types import ToolAnnotations

from .errors import InvalidRequest

Policy = Literal["writes", "destructive", "none"]

DECLINED = "The user declined this action, so it was not carried out."
"""The result the model gets for a call the user declined."""

SUMMARY_VALUE_CHARS = 120
SUMMARY_CHARS = 600


def needs_approval(annotations: ToolAnnotations | None, policy: Policy) -> bool:
    """Whether a call of a tool with `annotations` waits for the user under `policy`."""
    if policy == "none" or (annotations is not None and annotations.read_only_hint):
        return False
    if policy == "writes":
        return True
    return annotations is None or annotations.destructive_hint is not False


def generic_summary(title: str, arguments: Mapping[str, Any], origin: str = "") -> str:
    """A plain summary of a call from its tool and input: the title, where it runs, then `key: value`
    lines, each value shortened."""
    head = f"{title} ({origin})" if origin else title
    lines = [head]
    for key, value in arguments.items():
        text = value if isinstance(value, str) else repr(value)
        if len(text) > SUMMARY_VALUE_CHARS:
            text = text[: SUMMARY_VALUE_CHARS - 1] + "…"
        lines.append(f"{key}: {text}")
    summary = "\n".join(lines)
    return summary if len(summary) <= SUMMARY_CHARS else summary[: SUMMARY_CHARS - 1] + "…"


@dataclass(frozen=True)
class PendingCall:
    """A call waiting for its owner's decision, until `decide_by` (epoch seconds)."""

    id: str
    name: str
    input: dict[str, Any]
    summary: str
    request_id: str
    decide_by: float
    position: int = 0
    """Its place among the calls its answer asked for (decisions keep that order)."""

    def expired(self, now: float) -> bool:
        """Whether it is too late to decide it."""
        return now >= self.decide_by

    def event_data(self) -> dict[str, Any]:
        """The `approval_required` event's data."""
        return {"id": self.id, "name": self.name, "input": self.input, "summary": self.summary}


def decisions(
    pending: list[PendingCall], approvals: Mapping[str, bool], now: float
) -> list[tuple[PendingCall, bool]]:
    """Each waiting call with the user's decision, in the order they were asked. Refused (400) when a
    decision names an unknown or already decided call, names an expired one, or leaves a call undecided."""
    waiting = {call.id: call for call in pending}
    unknown = sorted(set(approvals) - set(waiting))
    if unknown:
        raise InvalidRequest(
            f"approvals: {', '.join(unknown)} is not a call waiting for approval in this conversation "
            "(unknown, or already decided)."
        )
    expired = sorted(call.id for call in pending if call.id in approvals and call.expired(now))
    if expired:
        raise InvalidRequest(f"approvals: {', '.join(expired)} expired; send a new message instead.")
    undecided = sorted(set(waiting) - set(approvals))
    if undecided:
        raise InvalidRequest(f"approvals must decide every waiting call; missing: {', '.join(undecided)}.")
    return [(call, approvals[call.id]) for call in pending]

"""Which calls wait for the user (from the tool's annotations and the policy, never from the model), the
checks a decision must pass, and the plain summary of a call."""

from __future__ import annotations

import pytest
from chatbot.approval import (
    SUMMARY_CHARS,
    SUMMARY_VALUE_CHARS,
    PendingCall,
    Policy,
    decisions,
    generic_summary,
    needs_approval,
)
from chatbot.errors import InvalidRequest
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
ADDITIVE = ToolAnnotations(read_only_hint=False, destructive_hint=False)
UNSAID = ToolAnnotations(read_only_hint=False)  # destructiveHint missing: true by the MCP default
NOTHING = ToolAnnotations()  # no hint at all: neither read-only nor known to be harmless

NOW = 1_900_000_000.0


@pytest.mark.parametrize(
    ("annotations", "policy", "waits"),
    [
        (READ_ONLY, "writes", False),
        (DESTRUCTIVE, "writes", True),
        (ADDITIVE, "writes", True),
        (UNSAID, "writes", True),
        (NOTHING, "writes", True),
        (None, "writes", True),
        (READ_ONLY, "destructive", False),
        (DESTRUCTIVE, "destructive", True),
        (ADDITIVE, "destructive", False),
        (UNSAID, "destructive", True),
        (NOTHING, "destructive", True),
        (None, "destructive", True),
        (READ_ONLY, "none", False),
        (DESTRUCTIVE, "none", False),
        (ADDITIVE, "none", False),
        (UNSAID, "none", False),
        (None, "none", False),
    ],
)
def test_whether_a_call_waits_follows_the_policy_and_the_annotations(
    annotations: ToolAnnotations | None, policy: Policy, waits: bool
) -> None:
    assert needs_approval(annotations, policy) is waits


@pytest.mark.parametrize("policy", ["writes", "destructive", "none"])
def test_a_read_only_tool_never_waits_even_if_also_marked_destructive(policy: Policy) -> None:
    # The MCP spec: destructiveHint only means something when readOnlyHint is false.
    assert not needs_approval(ToolAnnotations(read_only_hint=True, destructive_hint=True), policy)


# --------------------------------------------------------------------------------------- decisions


def waiting(call_id: str, decide_by: float = NOW + 900, name: str = "member_remove") -> PendingCall:
    return PendingCall(call_id, name, {"user_id": "user_bob"}, f"Remove Bob ({call_id})", "req_1", decide_by)


def test_every_waiting_call_comes_back_with_its_decision_in_the_order_it_was_asked() -> None:
    pending = [waiting("toolu_b"), waiting("toolu_c"), waiting("toolu_a")]
    decided = decisions(pending, {"toolu_a": True, "toolu_c": False, "toolu_b": True}, NOW)
    assert [(call.id, ok) for call, ok in decided] == [
        ("toolu_b", True),
        ("toolu_c", False),
        ("toolu_a", True),
    ]
    assert [call for call, _ in decided] == pending


def test_a_decision_about_an_unknown_or_already_decided_call_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest) as refused:
        decisions([waiting("toolu_a")], {"toolu_a": True, "toolu_zz": True, "toolu_yy": False}, NOW)
    assert refused.value.status == 400
    assert "toolu_yy, toolu_zz" in refused.value.message
    assert "already decided" in refused.value.message
    assert "toolu_a" not in refused.value.message


def test_a_decision_when_nothing_waits_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="toolu_a is not a call waiting"):
        decisions([], {"toolu_a": True}, NOW)


def test_a_decision_about_an_expired_call_is_refused_naming_it() -> None:
    pending = [waiting("toolu_a", decide_by=NOW - 1), waiting("toolu_b")]
    with pytest.raises(InvalidRequest) as refused:
        decisions(pending, {"toolu_a": True, "toolu_b": True}, NOW)
    assert "toolu_a expired" in refused.value.message
    assert "toolu_b" not in refused.value.message


def test_a_call_is_expired_from_the_very_moment_of_its_deadline() -> None:
    call = waiting("toolu_a", decide_by=NOW)
    assert call.expired(NOW)
    assert not call.expired(NOW - 0.001)
    with pytest.raises(InvalidRequest, match="expired"):
        decisions([call], {"toolu_a": False}, NOW)


def test_leaving_a_waiting_call_undecided_is_refused_naming_what_is_missing() -> None:
    pending = [waiting("toolu_a"), waiting("toolu_b"), waiting("toolu_c")]
    with pytest.raises(InvalidRequest) as refused:
        decisions(pending, {"toolu_b": True}, NOW)
    assert "every waiting call" in refused.value.message
    assert "missing: toolu_a, toolu_c" in refused.value.message


def test_an_empty_decision_with_calls_waiting_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="missing: toolu_a"):
        decisions([waiting("toolu_a")], {}, NOW)


def test_an_unknown_call_is_reported_before_an_expired_one_or_a_missing_one() -> None:
    pending = [waiting("toolu_a", decide_by=NOW - 1), waiting("toolu_b")]
    with pytest.raises(InvalidRequest, match="toolu_x is not a call waiting"):
        decisions(pending, {"toolu_a": True, "toolu_x": True}, NOW)


def test_an_expired_call_left_undecided_is_reported_as_missing() -> None:
    pending = [waiting("toolu_a", decide_by=NOW - 1), waiting("toolu_b")]
    with pytest.raises(InvalidRequest, match="missing: toolu_a"):
        decisions(pending, {"toolu_b": True}, NOW)


def test_the_approval_event_shows_the_call_and_its_summary_and_not_its_deadline() -> None:
    assert waiting("toolu_a").event_data() == {
        "id": "toolu_a",
        "name": "member_remove",
        "input": {"user_id": "user_bob"},
        "summary": "Remove Bob (toolu_a)",
    }


# ----------------------------------------------------------------------------------- generic summary


def test_a_generic_summary_is_the_title_then_one_line_per_argument() -> None:
    summary = generic_summary("Member update role", {"email": "bob@acme.test", "role": "admin"})
    assert summary == "Member update role\nemail: bob@acme.test\nrole: admin"


def test_a_generic_summary_names_where_the_tool_runs() -> None:
    assert generic_summary("Create issue", {}, origin="github") == "Create issue (github)"


def test_a_generic_summary_without_arguments_is_just_the_title() -> None:
    assert generic_summary("Organization get", {}) == "Organization get"


def test_values_that_are_not_text_are_shown_as_python_literals() -> None:
    summary = generic_summary("T", {"count": 3, "flag": True, "tags": ["a", "b"], "none": None})
    assert summary.splitlines()[1:] == ["count: 3", "flag: True", "tags: ['a', 'b']", "none: None"]


def test_a_long_value_is_shortened_with_an_ellipsis() -> None:
    summary = generic_summary("T", {"note": "x" * 500, "short": "y" * SUMMARY_VALUE_CHARS})
    note, short = summary.splitlines()[1:]
    assert note == "note: " + "x" * (SUMMARY_VALUE_CHARS - 1) + "…"
    assert short == "short: " + "y" * SUMMARY_VALUE_CHARS


def test_a_long_summary_is_shortened_to_its_cap_with_an_ellipsis() -> None:
    summary = generic_summary("T", {f"key{i}": "v" * 100 for i in range(20)})
    assert len(summary) == SUMMARY_CHARS
    assert summary.endswith("…")
    assert summary.startswith("T\nkey0: " + "v" * 100)


def test_a_summary_at_its_cap_is_kept_whole() -> None:
    title = "T" * SUMMARY_CHARS
    assert generic_summary(title, {}) == title

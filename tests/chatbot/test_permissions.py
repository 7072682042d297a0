"""The role table: the built-in one, its replacement by `CHATBOT_ROLES`, and the checks that name a bad entry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chatbot.permissions import DEFAULT_ROLE_TABLE, Caller, RoleTable


def test_the_built_in_table_is_the_documented_one() -> None:
    manage = {
        "chatbot:use",
        "organization:read",
        "organization:update",
        "member:read",
        "member:create",
        "member:update",
        "member:delete",
        "invitation:read",
        "invitation:create",
        "invitation:cancel",
        "audit:read",
        "usage:read",
    }
    assert DEFAULT_ROLE_TABLE.permissions("owner") == manage
    assert DEFAULT_ROLE_TABLE.permissions("admin") == manage
    assert DEFAULT_ROLE_TABLE.permissions("member") == {"chatbot:use", "organization:read", "member:read"}
    assert DEFAULT_ROLE_TABLE.permissions("viewer") == {"organization:read", "member:read"}


def test_a_role_not_in_the_table_has_no_permission() -> None:
    assert DEFAULT_ROLE_TABLE.permissions("superuser") == frozenset()
    assert not Caller("user_x", "org_x", "superuser").can("chatbot:use")


def test_several_roles_grant_what_any_of_them_grants() -> None:
    assert DEFAULT_ROLE_TABLE.permissions(["viewer", "member"]) == DEFAULT_ROLE_TABLE.permissions("member")
    assert DEFAULT_ROLE_TABLE.permissions(["viewer", "nobody"]) == DEFAULT_ROLE_TABLE.permissions("viewer")


def test_chatbot_roles_replaces_the_table_as_a_whole() -> None:
    table = RoleTable.parse(json.dumps({"editor": {"chatbot": ["use"], "project": ["read", "update"]}}))
    assert table.roles == ["editor"]
    assert table.permissions("editor") == {"chatbot:use", "project:read", "project:update"}
    # The built-in roles are gone with the built-in table.
    assert table.permissions("owner") == frozenset()


def test_a_caller_built_by_hand_has_the_built_in_grants_of_its_role_and_granted_ones_win() -> None:
    assert Caller("user_x", "org_x", "member").permissions == DEFAULT_ROLE_TABLE.permissions("member")
    assert Caller("user_x", "org_x", "member", granted=frozenset({"audit:read"})).can("audit:read")
    assert not Caller("user_x", "org_x", "owner", granted=frozenset()).can("chatbot:use")


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        pytest.param("{not json", "CHATBOT_ROLES is not valid JSON", id="not-json"),
        pytest.param('["owner"]', "CHATBOT_ROLES must be a JSON object", id="not-an-object"),
        pytest.param("{}", "CHATBOT_ROLES names no role", id="empty"),
        pytest.param('{"": {}}', "role '' is not a valid name", id="empty-role"),
        pytest.param(
            '{"editor": ["chatbot:use"]}', "role 'editor' must map resources to actions", id="role-list"
        ),
        pytest.param(
            '{"editor": {"chatbot": "use"}}',
            "role 'editor', resource 'chatbot': the actions must be a list of strings",
            id="actions-string",
        ),
        pytest.param(
            '{"editor": {"chatbot": ["use", 3]}}',
            "role 'editor', resource 'chatbot': the actions must be a list of strings",
            id="action-number",
        ),
        pytest.param(
            '{"editor": {"chat bot": ["use"]}}',
            "role 'editor', resource 'chat bot': not a valid",
            id="resource-space",
        ),
        pytest.param(
            '{"editor": {"chatbot": ["use:all"]}}',
            "role 'editor', resource 'chatbot': action 'use:all' is not a valid name",
            id="action-colon",
        ),
        pytest.param(
            '{"owner": {"chatbot": ["use"]}, "viewer": {"member": [""]}}',
            "role 'viewer', resource 'member': action '' is not a valid name",
            id="second-role-bad",
        ),
    ],
)
def test_a_malformed_role_table_is_refused_naming_the_bad_entry(raw: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        RoleTable.parse(raw)


def test_a_decoded_role_table_is_checked_the_same_way() -> None:
    bad: dict[str, Any] = {"editor": {"chatbot": [None]}}
    with pytest.raises(ValueError, match="role 'editor', resource 'chatbot'"):
        RoleTable.parse(bad)

"""How a request's tools are named and told apart: `<server>_<tool>`, made safe, cut with a hash when long,
and the first of two equal names kept."""

from __future__ import annotations

import logging

import pytest
from chatbot.permissions import Caller
from chatbot.tools import Catalog, Listing, Tool, offered_name
from chatbot.tools.catalog import named

OBJECT = {"type": "object", "properties": {"q": {"type": "string"}}}


def remote(name: str, server: str, schema: dict[str, object] = OBJECT) -> Tool:
    return Tool(name, "", schema, None, None, source=server, remote_name=name)


def builtin(name: str) -> Tool:
    return Tool(name, "", OBJECT, None, "member:read", remote_name=name)


@pytest.mark.parametrize(
    ("server", "tool", "expected"),
    [
        ("projects", "task_list", "projects_task_list"),
        ("everything", "get-sum", "everything_get-sum"),
        ("crm", "contacts.search v2", "crm_contacts_search_v2"),
        ("crm", "café", "crm_caf_"),
    ],
)
def test_a_remote_tool_is_offered_as_server_underscore_tool_with_unsafe_characters_replaced(
    server: str, tool: str, expected: str
) -> None:
    assert offered_name(server, tool) == expected


def test_a_name_over_64_characters_is_cut_and_ends_with_a_stable_hash() -> None:
    long = offered_name("projects", "t" * 100)
    other = offered_name("projects", "t" * 99 + "u")
    assert len(long) == len(other) == 64
    assert long.startswith("projects_ttt") and long[-9] == "_" and long != other
    assert offered_name("projects", "t" * 100) == long
    assert len(offered_name("projects", "t" * 55)) == 64, "exactly 64 is left whole"
    assert offered_name("projects", "t" * 55) == "projects_" + "t" * 55


def test_a_remote_name_that_clashes_with_a_builtin_or_an_earlier_server_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listing = Listing(
        {
            "member": [remote("list", "member"), remote("mine", "member")],
            "member_": None,
            "crm": [remote("a.b", "crm"), remote("a_b", "crm")],
        }
    )
    warned: set[tuple[str, str]] = set()
    with caplog.at_level(logging.WARNING):
        tools = named([builtin("member_list")], listing, warned)
        named([builtin("member_list")], listing, warned)
    assert sorted(tools) == ["crm_a_b", "member_list", "member_mine"]
    assert tools["member_list"].source == "", "the built-in keeps its name"
    assert tools["crm_a_b"].remote_name == "a.b", "the first in listing order wins"
    clashes = [r for r in caplog.records if "is taken" in r.getMessage()]
    assert len(clashes) == 2, "one warning per clash, not one per request"


def test_an_unknown_tool_is_refused_naming_the_tools_there_are() -> None:
    caller = Caller("user_bob", "org_acme", "member")
    tools = Catalog(caller, {"crm_find": remote("crm_find", "crm")}, builtin=None, servers={}, token=None)
    refused = tools.refusal("crm_delete_all", {})
    assert refused is not None and refused.is_error and "Available tools: crm_find" in refused.content


def test_arguments_must_be_an_object_and_a_closed_schema_refuses_unknown_names() -> None:
    caller = Caller("user_bob", "org_acme", "member")
    closed = remote("shut", "crm", {**OBJECT, "additionalProperties": False})
    tools = Catalog(
        caller,
        {"crm_find": remote("crm_find", "crm"), "crm_shut": closed},
        builtin=None,
        servers={},
        token=None,
    )
    assert tools.refusal("crm_find", {"anything": 1}) is None, "the server validates an open schema"
    not_object = tools.refusal("crm_find", ["q"])
    assert not_object is not None and "JSON object" in not_object.content
    unknown = tools.refusal("crm_shut", {"org_id": "org_globex"})
    assert unknown is not None and "unknown org_id" in unknown.content


def test_the_token_never_appears_in_the_catalogs_repr() -> None:
    tools = Catalog(Caller("u", "o", "member"), {}, builtin=None, servers={}, token="secret-token")
    assert "secret-token" not in repr(tools)

"""The MCP tools through the real in-process mcp client: filtering and re-checking by permission, tenant
isolation, guard rails, and every way a call can go wrong coming back as an `is_error` result."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from chatbot.appdata import AppData, Member
from chatbot.errors import Unavailable
from chatbot.permissions import DEFAULT_ROLE_TABLE, Caller, Role
from chatbot.tools import CALLER_META_KEY, PERMISSION_META_KEY, BuiltinTools, ToolResult, caller_meta
from mcp import Client

from tests.fakes.dynamodb import APP_TABLE, AtomicClient

ALL_TOOLS = [
    "invitation_cancel",
    "invitation_create",
    "invitation_list",
    "member_get",
    "member_list",
    "member_remove",
    "member_update_role",
    "organization_get",
]
READ_TOOLS = ["member_get", "member_list", "organization_get"]


@pytest.fixture
async def builtin(appdata: AppData) -> AsyncIterator[BuiltinTools]:
    async with BuiltinTools(appdata) as box:
        yield box


async def who(appdata: AppData, org_id: str, user_id: str) -> Caller:
    caller = await appdata.get_caller(org_id, user_id)
    assert caller is not None
    return caller


def data(result: ToolResult) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content)


async def names(builtin: BuiltinTools, caller: Caller) -> list[str]:
    return [d["name"] for d in await builtin.definitions(caller)]


async def test_admin_is_offered_all_eight_tools_sorted_by_name(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    assert await names(builtin, await who(appdata, "org_acme", "user_alice")) == ALL_TOOLS


@pytest.mark.parametrize(("user_id", "role"), [("user_bob", "member"), ("user_erin", "viewer")])
async def test_members_and_viewers_are_offered_only_the_read_tools_they_may_use(
    appdata: AppData, builtin: BuiltinTools, user_id: str, role: Role
) -> None:
    caller = await who(appdata, "org_acme", user_id)
    assert caller.role == role
    assert await names(builtin, caller) == READ_TOOLS


async def test_every_offered_tool_is_one_the_role_permits_and_every_other_is_withheld(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    async with Client(builtin.server) as client:
        permission = {t.name: (t.meta or {})[PERMISSION_META_KEY] for t in (await client.list_tools()).tools}
    assert sorted(permission) == ALL_TOOLS
    for role in DEFAULT_ROLE_TABLE.roles:
        caller = Caller("user_x", "org_acme", role)
        offered = set(await names(builtin, caller))
        granted = DEFAULT_ROLE_TABLE.permissions(role)
        assert offered == {name for name, needed in permission.items() if needed in granted}


async def test_definitions_are_anthropic_tool_params_without_any_organization_argument(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    for definition in await builtin.definitions(await who(appdata, "org_acme", "user_alice")):
        assert set(definition) == {"name", "description", "input_schema"}
        assert 0 < len(definition["description"]) <= 160
        schema = definition["input_schema"]
        assert schema["type"] == "object"
        assert not {"org_id", "organization", "organization_id"} & set(schema.get("properties", {}))
        assert "title" not in json.dumps(schema)


async def test_definitions_are_fresh_dicts_each_time(appdata: AppData, builtin: BuiltinTools) -> None:
    alice = await who(appdata, "org_acme", "user_alice")
    first = await builtin.definitions(alice)
    first[-1]["cache_control"] = {"type": "ephemeral"}
    first[0]["input_schema"]["properties"].clear()
    second = await builtin.definitions(alice)
    assert "cache_control" not in second[-1]
    assert second[0]["input_schema"]["properties"]


async def test_tools_are_annotated_read_only_or_destructive(builtin: BuiltinTools) -> None:
    async with Client(builtin.server) as client:
        annotations = {t.name: t.annotations for t in (await client.list_tools()).tools}
    for name, a in annotations.items():
        assert a is not None
        is_read = name in READ_TOOLS or name == "invitation_list"
        assert a.read_only_hint is is_read
        assert a.destructive_hint is (name in {"member_update_role", "member_remove", "invitation_cancel"})


async def test_organization_get_reports_the_callers_own_organization(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    result = await builtin.call(await who(appdata, "org_acme", "user_bob"), "organization_get", {})
    assert data(result) == {
        "id": "org_acme",
        "name": "Acme Inc",
        "member_count": 3,
        "created_at": "2025-01-06T09:00:00Z",
    }


async def test_member_list_filters_by_role(appdata: AppData, builtin: BuiltinTools) -> None:
    bob = await who(appdata, "org_acme", "user_bob")
    everyone = data(await builtin.call(bob, "member_list", {}))
    assert [m["email"] for m in everyone["members"]] == ["alice@acme.test", "bob@acme.test", "erin@acme.test"]
    admins = data(await builtin.call(bob, "member_list", {"role": "admin"}))
    assert admins["count"] == 1
    assert admins["members"][0] == {
        "user_id": "user_alice",
        "name": "Alice Anders",
        "email": "alice@acme.test",
        "role": "admin",
        "joined_at": "2025-01-06T09:00:00Z",
    }


async def test_admin_changes_a_role_and_the_change_is_visible(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    alice = await who(appdata, "org_acme", "user_alice")
    result = data(
        await builtin.call(alice, "member_update_role", {"email": "erin@acme.test", "role": "member"})
    )
    assert (result["member"]["role"], result["previous_role"], result["changed"]) == (
        "member",
        "viewer",
        True,
    )
    assert data(await builtin.call(alice, "member_get", {"user_id": "user_erin"}))["role"] == "member"


async def test_admin_invites_lists_and_cancels(appdata: AppData, builtin: BuiltinTools) -> None:
    alice = await who(appdata, "org_acme", "user_alice")
    created = data(
        await builtin.call(alice, "invitation_create", {"email": "hank@acme.test", "role": "viewer"})
    )
    listed = data(await builtin.call(alice, "invitation_list", {}))
    assert [i["email"] for i in listed["invitations"]] == ["gina@acme.test", "hank@acme.test"]
    inv_id = created["invitation"]["id"]
    assert (
        data(await builtin.call(alice, "invitation_cancel", {"invitation_id": inv_id}))["canceled"]["id"]
        == inv_id
    )
    assert data(await builtin.call(alice, "invitation_list", {}))["count"] == 1


async def test_admin_removes_a_member(appdata: AppData, builtin: BuiltinTools) -> None:
    alice = await who(appdata, "org_acme", "user_alice")
    assert (
        data(await builtin.call(alice, "member_remove", {"user_id": "user_erin"}))["removed"]["user_id"]
        == "user_erin"
    )
    assert await appdata.get_caller("org_acme", "user_erin") is None


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("member_update_role", {"user_id": "user_erin", "role": "member"}),
        ("member_remove", {"user_id": "user_erin"}),
        ("invitation_create", {"email": "x@acme.test", "role": "viewer"}),
        ("invitation_cancel", {"invitation_id": "inv_acme_gina"}),
        ("invitation_list", {}),
    ],
)
async def test_a_call_the_role_does_not_allow_is_refused_at_execution(
    appdata: AppData, builtin: BuiltinTools, name: str, arguments: dict[str, Any]
) -> None:
    bob = await who(appdata, "org_acme", "user_bob")
    result = await builtin.call(bob, name, arguments)
    assert result.is_error
    assert "Not permitted" in result.content and "member" in result.content
    assert (await appdata.get_member("org_acme", user_id="user_erin")).role == "viewer"
    assert [i.invitation_id for i in await appdata.list_invitations("org_acme")] == ["inv_acme_gina"]


async def test_the_server_itself_refuses_a_caller_without_the_permission_or_without_identity(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    erin = await who(appdata, "org_acme", "user_erin")
    async with Client(builtin.server) as client:
        refused = await client.call_tool("member_remove", {"user_id": "user_bob"}, meta=caller_meta(erin))
        anonymous = await client.call_tool("member_list", {})
        forged_meta: Any = {CALLER_META_KEY: {"user_id": "x", "role": "owner"}}
        forged = await client.call_tool("member_list", {}, meta=forged_meta)
    assert refused.is_error and "Not permitted" in refused.content[0].text  # type: ignore[union-attr]
    assert anonymous.is_error and "No caller identity" in anonymous.content[0].text  # type: ignore[union-attr]
    assert forged.is_error and "No caller identity" in forged.content[0].text  # type: ignore[union-attr]
    assert await appdata.get_caller("org_acme", "user_bob") is not None


async def test_carol_of_globex_never_sees_or_touches_acme_whatever_the_arguments(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    carol = await who(appdata, "org_globex", "user_carol")
    listed = data(await builtin.call(carol, "member_list", {}))
    assert {m["user_id"] for m in listed["members"]} == {"user_carol", "user_dave"}
    assert data(await builtin.call(carol, "organization_get", {}))["id"] == "org_globex"
    assert data(await builtin.call(carol, "invitation_list", {}))["count"] == 0
    attempts = [
        ("member_get", {"user_id": "user_alice"}),
        ("member_get", {"email": "alice@acme.test"}),
        ("member_update_role", {"user_id": "user_bob", "role": "viewer"}),
        ("member_remove", {"email": "erin@acme.test"}),
        ("invitation_cancel", {"invitation_id": "inv_acme_gina"}),
        ("invitation_cancel", {"email": "gina@acme.test"}),
        ("member_list", {"org_id": "org_acme"}),
        ("organization_get", {"org_id": "org_acme"}),
        ("member_update_role", {"user_id": "user_bob", "role": "viewer", "org_id": "org_acme"}),
    ]
    for name, arguments in attempts:
        result = await builtin.call(carol, name, arguments)
        assert result.is_error, (name, arguments)
        assert "Alice" not in result.content and "acme.test" not in result.content.replace(
            str(arguments.get("email", "")), ""
        )
    smuggled = await builtin.call(carol, "member_list", {"org_id": "org_acme"})
    assert "not an argument" in smuggled.content
    assert [m.role for m in await appdata.list_members("org_acme")] == ["admin", "member", "viewer"]
    assert [i.invitation_id for i in await appdata.list_invitations("org_acme")] == ["inv_acme_gina"]


async def test_an_organization_smuggled_past_the_toolbox_is_ignored_by_the_server(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    carol = await who(appdata, "org_globex", "user_carol")
    async with Client(builtin.server) as client:
        result = await client.call_tool("member_list", {"org_id": "org_acme"}, meta=caller_meta(carol))
    listed = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert {m["user_id"] for m in listed["members"]} == {"user_carol", "user_dave"}


async def test_concurrent_calls_of_different_callers_each_act_as_their_own_caller(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    callers = [await who(appdata, "org_acme", "user_bob"), await who(appdata, "org_globex", "user_dave")]
    expected = {
        "org_acme": {"user_alice", "user_bob", "user_erin"},
        "org_globex": {"user_carol", "user_dave"},
    }
    picks = [callers[i % 2] for i in range(20)]
    results = await asyncio.gather(*(builtin.call(c, "member_list", {}) for c in picks))
    for caller, result in zip(picks, results, strict=True):
        assert {m["user_id"] for m in data(result)["members"]} == expected[caller.org_id]


@pytest.mark.parametrize(
    ("user_id", "name", "arguments", "needle"),
    [
        ("user_alice", "member_update_role", {"user_id": "user_alice", "role": "member"}, "your own role"),
        ("user_alice", "member_remove", {"email": "alice@acme.test"}, "remove yourself"),
        ("user_alice", "member_update_role", {"user_id": "user_bob", "role": "owner"}, "above your own"),
        ("user_alice", "invitation_create", {"email": "new@acme.test", "role": "owner"}, "above your own"),
        (
            "user_alice",
            "invitation_create",
            {"email": "gina@acme.test", "role": "member"},
            "pending invitation",
        ),
        ("user_alice", "invitation_create", {"email": "bob@acme.test", "role": "member"}, "already a member"),
        ("user_alice", "invitation_create", {"email": "bob at acme", "role": "member"}, "not a valid email"),
        ("user_alice", "member_get", {}, "exactly one of user_id or email"),
        ("user_alice", "member_get", {"user_id": "user_zed"}, "No member"),
        ("user_alice", "invitation_cancel", {"invitation_id": "inv_nope"}, "No pending invitation"),
    ],
)
async def test_guard_rails_come_back_as_explained_errors(
    appdata: AppData, builtin: BuiltinTools, user_id: str, name: str, arguments: dict[str, Any], needle: str
) -> None:
    result = await builtin.call(await who(appdata, "org_acme", user_id), name, arguments)
    assert result.is_error
    assert needle in result.content


async def test_an_admin_may_not_change_an_owner_through_the_tools(
    dynamodb: Any, appdata: AppData, builtin: BuiltinTools
) -> None:
    from chatbot.appdata import member_item

    owner = Member("user_olga", "Olga Owner", "olga@acme.test", "owner", "2025-02-01T00:00:00Z")
    dynamodb.put_item(TableName=APP_TABLE, Item=member_item("org_acme", owner))
    alice = await who(appdata, "org_acme", "user_alice")
    result = await builtin.call(alice, "member_update_role", {"email": "olga@acme.test", "role": "member"})
    assert result.is_error and "role is owner" in result.content
    assert (await appdata.get_member("org_acme", user_id="user_olga")).role == "owner"


async def test_concurrent_demotions_of_the_two_last_admins_leave_one(dynamodb: Any, appdata: AppData) -> None:
    alice = await who(appdata, "org_acme", "user_alice")
    await appdata.update_member_role(alice, "admin", user_id="user_bob")
    bob = await who(appdata, "org_acme", "user_bob")
    racing = AppData(AtomicClient(dynamodb, hold_commits=2), APP_TABLE)
    async with BuiltinTools(racing) as builtin:
        results = await asyncio.gather(
            builtin.call(alice, "member_update_role", {"user_id": "user_bob", "role": "member"}),
            builtin.call(bob, "member_update_role", {"user_id": "user_alice", "role": "member"}),
        )
    assert sorted(r.is_error for r in results) == [False, True]
    assert len(await appdata.list_members("org_acme", role="admin")) == 1


@pytest.mark.parametrize(
    ("arguments", "needle"),
    [
        ({"role": "boss"}, "role"),
        ({"role": 7}, "role"),
        (["member"], "must be a JSON object"),
        ("role=admin", "must be a JSON object"),
        (None, "must be a JSON object"),
        ({"rolez": "admin"}, "unknown rolez"),
    ],
)
async def test_invalid_arguments_are_explained(
    appdata: AppData, builtin: BuiltinTools, arguments: object, needle: str
) -> None:
    result = await builtin.call(await who(appdata, "org_acme", "user_bob"), "member_list", arguments)
    assert result.is_error
    assert needle in result.content
    assert "errors.pydantic.dev" not in result.content


async def test_an_unknown_tool_is_explained_with_the_tools_available(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    result = await builtin.call(await who(appdata, "org_acme", "user_bob"), "drop_database", {})
    assert result.is_error
    assert "Unknown tool 'drop_database'" in result.content
    assert "member_list" in result.content and "member_remove" not in result.content


class StuckAppData(AppData):
    """Application data whose member listing never answers."""

    def __init__(self, client: Any) -> None:
        super().__init__(client, APP_TABLE)
        self.started = anyio.Event()
        self.cancelled = False

    async def list_members(self, org_id: str, role: Role | None = None) -> list[Member]:
        self.started.set()
        try:
            await anyio.Event().wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled = True
            raise
        raise AssertionError("unreachable: the wait above never ends")


async def test_a_tool_that_takes_too_long_times_out_and_the_toolbox_keeps_working(dynamodb: Any) -> None:
    stuck = StuckAppData(dynamodb)
    async with BuiltinTools(stuck, timeout_seconds=0.2) as builtin:
        bob = await who(stuck, "org_acme", "user_bob")
        result = await builtin.call(bob, "member_list", {})
        assert result == ToolResult(True, "member_list timed out after 0.2 s.")
        assert stuck.started.is_set() and stuck.cancelled
        assert data(await builtin.call(bob, "organization_get", {}))["id"] == "org_acme"


async def test_a_timed_out_change_warns_it_may_have_been_applied(dynamodb: Any) -> None:
    class StuckChange(AppData):
        async def remove_member(
            self, actor: Caller, *, user_id: str | None = None, email: str | None = None
        ) -> Member:
            await anyio.Event().wait()
            raise AssertionError("unreachable")

    async with BuiltinTools(StuckChange(dynamodb, APP_TABLE), timeout_seconds=0.1) as builtin:
        alice = Caller("user_alice", "org_acme", "admin")
        result = await builtin.call(alice, "member_remove", {"user_id": "user_bob"})
    assert result.is_error and "timed out" in result.content and "applied" in result.content


class CrowdedAppData(AppData):
    """An organization with thousands of members."""

    async def list_members(self, org_id: str, role: Role | None = None) -> list[Member]:
        return [
            Member(f"user_{i:05}", f"Person {i}", f"person{i}@big.test", "member", "2025-01-01T00:00:00Z")
            for i in range(5000)
        ]


async def test_a_huge_result_is_truncated_with_a_clear_marker(dynamodb: Any) -> None:
    async with BuiltinTools(CrowdedAppData(dynamodb, APP_TABLE), max_result_chars=2000) as builtin:
        result = await builtin.call(Caller("user_bob", "org_acme", "member"), "member_list", {})
    assert result.is_error
    assert len(result.content) <= 2000
    assert result.content.startswith('{"count":5000,"members":[')
    assert "[TRUNCATED" in result.content and "ask for less" in result.content


async def test_a_result_at_the_limit_is_returned_whole(dynamodb: Any, appdata: AppData) -> None:
    async with BuiltinTools(appdata) as builtin:
        bob = await who(appdata, "org_acme", "user_bob")
        full = await builtin.call(bob, "member_list", {})
    async with BuiltinTools(appdata, max_result_chars=len(full.content)) as builtin:
        assert await builtin.call(bob, "member_list", {}) == full


async def test_a_crash_inside_a_tool_is_an_error_result_that_leaks_nothing(dynamodb: Any) -> None:
    class BrokenAppData(AppData):
        async def get_organization(self, org_id: str) -> Any:
            raise KeyError("internal secret detail")

    async with BuiltinTools(BrokenAppData(dynamodb, APP_TABLE)) as builtin:
        result = await builtin.call(Caller("user_bob", "org_acme", "member"), "organization_get", {})
    assert result.is_error
    assert "organization_get" in result.content and "secret" not in result.content


async def test_an_unreachable_data_store_is_an_error_result(dynamodb: Any) -> None:
    class DownAppData(AppData):
        async def list_invitations(self, org_id: str) -> Any:
            raise Unavailable("The application data store is unreachable right now.")

    async with BuiltinTools(DownAppData(dynamodb, APP_TABLE)) as builtin:
        result = await builtin.call(Caller("user_alice", "org_acme", "admin"), "invitation_list", {})
    assert result.is_error and "unreachable" in result.content


async def test_a_closed_toolbox_refuses_to_be_used(appdata: AppData) -> None:
    builtin = BuiltinTools(appdata)
    alice = Caller("user_alice", "org_acme", "admin")
    with pytest.raises(RuntimeError, match="not open"):
        await builtin.definitions(alice)
    async with builtin:
        assert await builtin.definitions(alice)
    with pytest.raises(RuntimeError, match="not open"):
        await builtin.call(alice, "member_list", {})


async def test_the_server_offers_exactly_the_tool_table_with_its_permissions_and_annotations(
    builtin: BuiltinTools,
) -> None:
    from chatbot.tools import TOOLS

    async with Client(builtin.server) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert sorted(listed) == sorted(spec.name for spec in TOOLS) == ALL_TOOLS
    for spec in TOOLS:
        tool = listed[spec.name]
        assert (tool.meta or {})[PERMISSION_META_KEY] == spec.permission
        assert tool.annotations == spec.annotations
        assert tool.description == spec.description
        # The handler's first two parameters (the data and the caller) are never the model's to give.
        properties = set(tool.input_schema.get("properties", {}))
        assert not properties & {"data", "caller", "ctx", "org_id"}, (spec.name, properties)


def test_every_tool_that_changes_data_says_in_plain_words_what_a_call_would_do() -> None:
    from chatbot.tools import TOOLS

    changes = [spec.name for spec in TOOLS if not spec.annotations.read_only_hint]
    assert changes and all(spec.summary is not None for spec in TOOLS if spec.name in changes), changes

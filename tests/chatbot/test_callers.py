"""Where the caller's role comes from: the membership record, read at every request, or the token's claim."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from chatbot.appdata import MEMBER_PREFIX, AppData, Member, app_key, member_item
from chatbot.auth import Identity
from chatbot.callers import Callers
from chatbot.errors import Forbidden
from chatbot.permissions import DEFAULT_ROLE_TABLE, RoleTable
from chatbot.services import build_services
from chatbot.settings import Settings

from tests.fakes.dynamodb import APP_TABLE

EDITORS = RoleTable.parse(
    {"editor": {"chatbot": ["use"], "project": ["update"]}, "member": {"member": ["read"]}}
)


def claims(appdata: AppData, table: RoleTable = DEFAULT_ROLE_TABLE) -> Callers:
    return Callers(appdata, table, "claim", "org_role")


def membership(appdata: AppData, table: RoleTable = DEFAULT_ROLE_TABLE) -> Callers:
    return Callers(appdata, table)


def set_role(dynamodb: Any, user_id: str, role: str) -> None:
    member = Member(user_id, "Alice Anders", "alice@acme.test", role, "2025-01-01T00:00:00Z")  # type: ignore[arg-type]
    dynamodb.put_item(TableName=APP_TABLE, Item=member_item("org_acme", member))


async def test_the_claim_source_needs_no_membership_record(appdata: AppData) -> None:
    identity = Identity("user_new", "org_elsewhere", roles=("admin",), name="Nina", email="nina@host.test")
    assert await appdata.get_caller("org_elsewhere", "user_new") is None
    caller = await claims(appdata).of(identity)
    assert (caller.user_id, caller.org_id, caller.role, caller.name, caller.email) == (
        "user_new",
        "org_elsewhere",
        "admin",
        "Nina",
        "nina@host.test",
    )
    assert caller.permissions == DEFAULT_ROLE_TABLE.permissions("admin")


async def test_the_claim_source_trusts_the_token_over_the_membership_record(appdata: AppData) -> None:
    # Alice is an admin in the application data; the token says viewer, and the token is the source.
    caller = await claims(appdata).of(Identity("user_alice", "org_acme", roles=("viewer",)))
    assert caller.role == "viewer" and not caller.can("chatbot:use")


async def test_the_claim_source_refuses_a_token_that_names_no_role(appdata: AppData) -> None:
    with pytest.raises(Forbidden, match="'org_role' claim"):
        await claims(appdata).of(Identity("user_alice", "org_acme"))


async def test_the_claim_source_grants_what_chatbot_roles_says_for_every_role_named(appdata: AppData) -> None:
    caller = await claims(appdata, EDITORS).of(Identity("user_new", "org_x", roles=("member", "editor")))
    assert caller.role == "member,editor"
    assert caller.permissions == {"chatbot:use", "project:update", "member:read"}
    unknown = await claims(appdata, EDITORS).of(Identity("user_new", "org_x", roles=("owner",)))
    assert unknown.permissions == frozenset()


async def test_the_membership_source_ignores_any_role_the_token_names(appdata: AppData) -> None:
    caller = await membership(appdata).of(Identity("user_bob", "org_acme", roles=("owner",)))
    assert caller.role == "member" and not caller.can("audit:read")


async def test_the_membership_source_refuses_someone_without_a_record(appdata: AppData) -> None:
    with pytest.raises(Forbidden, match="not a member"):
        await membership(appdata).of(Identity("user_new", "org_acme", roles=("owner",)))


async def test_with_the_membership_source_a_demotion_takes_effect_at_the_next_request(
    dynamodb: Any, appdata: AppData
) -> None:
    callers = membership(appdata)
    alice = Identity("user_alice", "org_acme")
    assert (await callers.of(alice)).can("audit:read")
    set_role(dynamodb, "user_alice", "viewer")
    demoted = await callers.of(alice)
    assert demoted.role == "viewer" and not demoted.can("chatbot:use") and not demoted.can("audit:read")
    dynamodb.delete_item(TableName=APP_TABLE, Key=app_key("org_acme", MEMBER_PREFIX + "user_alice"))
    with pytest.raises(Forbidden):
        await callers.of(alice)


async def test_the_membership_source_grants_what_chatbot_roles_says_for_the_records_role(
    dynamodb: Any,
) -> None:
    appdata = AppData(dynamodb, APP_TABLE, EDITORS)
    bob = await membership(appdata, EDITORS).of(Identity("user_bob", "org_acme"))
    assert bob.role == "member" and bob.permissions == {"member:read"}
    alice = await membership(appdata, EDITORS).of(Identity("user_alice", "org_acme"))
    assert alice.role == "admin" and alice.permissions == frozenset()


def test_a_role_claim_with_the_membership_source_is_ignored_with_a_warning_at_startup(
    dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        services = build_services(Settings(auth_role_claim="org_role"), dynamodb)
    assert "the token's role claim is ignored" in caplog.text
    assert services.settings.chatbot_role_source == "membership"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        build_services(Settings(auth_role_claim="org_role", chatbot_role_source="claim"), dynamodb)
    assert "role claim is ignored" not in caplog.text

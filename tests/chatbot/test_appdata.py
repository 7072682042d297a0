"""The application-data repository: tenant scoping, roles from the membership record, guard rails, races."""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
import pytest
from chatbot.appdata import AppData, Member, check_keeps_owner_and_admin, member_item, normalize_email
from chatbot.errors import (
    Conflict,
    GuardRailViolation,
    InvalidInput,
    PermissionDenied,
    RecordNotFound,
    Unavailable,
)
from chatbot.permissions import DEFAULT_ROLE_TABLE, Caller, Role

from tests.fakes.dynamodb import APP_TABLE, AtomicClient, InterferingClient


async def caller(appdata: AppData, org_id: str, user_id: str) -> Caller:
    found = await appdata.get_caller(org_id, user_id)
    assert found is not None
    return found


def add_member(dynamodb: Any, org_id: str, user_id: str, role: Role) -> None:
    member = Member(user_id, user_id.title(), f"{user_id}@example.test", role, "2025-02-01T00:00:00Z")
    dynamodb.put_item(TableName=APP_TABLE, Item=member_item(org_id, member))


async def test_get_caller_reads_role_and_names_from_the_membership_record(appdata: AppData) -> None:
    alice = await appdata.get_caller("org_acme", "user_alice")
    assert alice == Caller(
        user_id="user_alice",
        org_id="org_acme",
        role="admin",
        name="Alice Anders",
        email="alice@acme.test",
        org_name="Acme Inc",
        granted=DEFAULT_ROLE_TABLE.permissions("admin"),
    )


@pytest.mark.parametrize(
    ("org_id", "user_id"),
    [
        ("org_acme", "user_carol"),
        ("org_globex", "user_alice"),
        ("org_nowhere", "user_alice"),
        ("org_acme", "nobody"),
    ],
)
async def test_get_caller_is_none_for_someone_not_a_member_of_that_organization(
    appdata: AppData, org_id: str, user_id: str
) -> None:
    assert await appdata.get_caller(org_id, user_id) is None


async def test_a_role_change_shows_in_the_next_get_caller(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    await appdata.update_member_role(alice, "viewer", user_id="user_bob")
    assert (await caller(appdata, "org_acme", "user_bob")).role == "viewer"


async def test_organization_reports_name_created_and_member_count(appdata: AppData) -> None:
    acme = await appdata.get_organization("org_acme")
    assert (acme.org_id, acme.name, acme.member_count, acme.created_at) == (
        "org_acme",
        "Acme Inc",
        3,
        "2025-01-06T09:00:00Z",
    )
    assert (await appdata.get_organization("org_globex")).member_count == 2
    with pytest.raises(RecordNotFound):
        await appdata.get_organization("org_nowhere")


async def test_members_are_listed_by_name_only_from_the_given_organization(appdata: AppData) -> None:
    acme = await appdata.list_members("org_acme")
    assert [m.user_id for m in acme] == ["user_alice", "user_bob", "user_erin"]
    globex = await appdata.list_members("org_globex")
    assert [m.user_id for m in globex] == ["user_carol", "user_dave"]
    assert [m.user_id for m in await appdata.list_members("org_acme", role="viewer")] == ["user_erin"]


async def test_get_member_finds_by_id_or_email_case_insensitively_within_the_organization(
    appdata: AppData,
) -> None:
    assert (await appdata.get_member("org_acme", email="  BOB@Acme.test ")).user_id == "user_bob"
    assert (await appdata.get_member("org_acme", user_id="user_erin")).role == "viewer"
    with pytest.raises(RecordNotFound):
        await appdata.get_member("org_globex", user_id="user_alice")
    with pytest.raises(RecordNotFound):
        await appdata.get_member("org_globex", email="alice@acme.test")
    with pytest.raises(InvalidInput):
        await appdata.get_member("org_acme")
    with pytest.raises(InvalidInput):
        await appdata.get_member("org_acme", user_id="user_bob", email="bob@acme.test")


async def test_admin_changes_a_members_role_and_gets_the_previous_one(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    member, previous = await appdata.update_member_role(alice, "admin", email="bob@acme.test")
    assert (member.user_id, member.role, previous) == ("user_bob", "admin", "member")
    assert (await appdata.get_member("org_acme", user_id="user_bob")).role == "admin"


async def test_setting_the_same_role_again_changes_nothing(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    member, previous = await appdata.update_member_role(alice, "member", user_id="user_bob")
    assert (member.role, previous) == ("member", "member")


async def test_nobody_changes_their_own_role(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(GuardRailViolation, match="your own role"):
        await appdata.update_member_role(alice, "member", user_id="user_alice")
    assert (await appdata.get_member("org_acme", user_id="user_alice")).role == "admin"


async def test_nobody_grants_a_role_above_their_own(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(GuardRailViolation, match="above your own"):
        await appdata.update_member_role(alice, "owner", user_id="user_bob")
    assert (await appdata.get_member("org_acme", user_id="user_bob")).role == "member"


async def test_an_admin_cannot_change_or_remove_an_owner(dynamodb: Any, appdata: AppData) -> None:
    add_member(dynamodb, "org_acme", "user_olga", "owner")
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(GuardRailViolation, match="role is owner"):
        await appdata.update_member_role(alice, "admin", user_id="user_olga")
    with pytest.raises(GuardRailViolation, match="role is owner"):
        await appdata.remove_member(alice, user_id="user_olga")
    assert (await appdata.get_member("org_acme", user_id="user_olga")).role == "owner"


async def test_an_owner_can_make_another_member_owner_and_demote_an_admin(
    dynamodb: Any, appdata: AppData
) -> None:
    add_member(dynamodb, "org_acme", "user_olga", "owner")
    olga = await caller(appdata, "org_acme", "user_olga")
    await appdata.update_member_role(olga, "owner", user_id="user_bob")
    await appdata.update_member_role(olga, "member", user_id="user_alice")
    roles = {m.user_id: m.role for m in await appdata.list_members("org_acme")}
    assert roles == {"user_olga": "owner", "user_bob": "owner", "user_alice": "member", "user_erin": "viewer"}


async def test_the_acting_users_current_role_counts_not_the_one_they_started_with(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    stale_bob = Caller("user_bob", "org_acme", "admin")  # as if Bob had been demoted mid-request
    with pytest.raises(PermissionDenied, match=r"\(member\)"):
        await appdata.update_member_role(stale_bob, "member", user_id="user_alice")
    with pytest.raises(PermissionDenied):
        await appdata.create_invitation(stale_bob, "new@acme.test", "viewer")
    await appdata.remove_member(alice, user_id="user_bob")
    with pytest.raises(PermissionDenied, match="no longer a member"):
        await appdata.remove_member(stale_bob, user_id="user_erin")


async def test_a_change_never_reaches_another_organization_whatever_the_target(appdata: AppData) -> None:
    carol = await caller(appdata, "org_globex", "user_carol")
    with pytest.raises(RecordNotFound):
        await appdata.update_member_role(carol, "viewer", user_id="user_bob")
    with pytest.raises(RecordNotFound):
        await appdata.remove_member(carol, email="bob@acme.test")
    with pytest.raises(RecordNotFound):
        await appdata.cancel_invitation(carol, invitation_id="inv_acme_gina")
    assert [m.role for m in await appdata.list_members("org_acme")] == ["admin", "member", "viewer"]
    assert [i.invitation_id for i in await appdata.list_invitations("org_acme")] == ["inv_acme_gina"]


async def test_remove_member_deletes_the_membership_but_not_oneself(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(GuardRailViolation, match="remove yourself"):
        await appdata.remove_member(alice, user_id="user_alice")
    removed = await appdata.remove_member(alice, email="erin@acme.test")
    assert removed.user_id == "user_erin"
    assert await appdata.get_caller("org_acme", "user_erin") is None
    assert (await appdata.get_organization("org_acme")).member_count == 2
    with pytest.raises(RecordNotFound):
        await appdata.remove_member(alice, user_id="user_erin")


@pytest.mark.parametrize(
    ("roles", "target", "new_role", "match"),
    [
        (["owner", "admin"], 0, "admin", "last owner and"),
        (["owner", "admin"], 0, None, "last owner and"),
        (["admin", "member"], 0, "viewer", "last owner or admin"),
        (["admin", "viewer"], 0, None, "last owner or admin"),
    ],
)
def test_the_last_owner_and_the_last_owner_or_admin_stay(
    roles: list[Any], target: int, new_role: Any, match: str
) -> None:
    members = [Member(f"u{i}", f"U{i}", f"u{i}@x.test", role, "") for i, role in enumerate(roles)]
    with pytest.raises(GuardRailViolation, match=match):
        check_keeps_owner_and_admin(members, members[target], new_role)


@pytest.mark.parametrize(
    ("roles", "target", "new_role"),
    [(["owner", "owner"], 0, "member"), (["owner", "admin"], 1, None), (["admin", "admin"], 0, "viewer")],
)
def test_changes_that_leave_an_owner_and_an_admin_pass(roles: list[Any], target: int, new_role: Any) -> None:
    members = [Member(f"u{i}", f"U{i}", f"u{i}@x.test", role, "") for i, role in enumerate(roles)]
    check_keeps_owner_and_admin(members, members[target], new_role)


async def test_invitation_is_created_listed_and_cancelled(appdata: AppData) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    created = await appdata.create_invitation(alice, " Hank@Acme.TEST ", "viewer")
    assert (created.email, created.role, created.status, created.invited_by) == (
        "hank@acme.test",
        "viewer",
        "pending",
        "user_alice",
    )
    pending = await appdata.list_invitations("org_acme")
    assert [i.email for i in pending] == ["gina@acme.test", "hank@acme.test"]
    canceled = await appdata.cancel_invitation(alice, invitation_id=created.invitation_id)
    assert canceled.status == "canceled"
    gina = await appdata.cancel_invitation(alice, email="GINA@acme.test")
    assert gina.invitation_id == "inv_acme_gina"
    assert await appdata.list_invitations("org_acme") == []
    with pytest.raises(RecordNotFound):
        await appdata.cancel_invitation(alice, email="gina@acme.test")
    again = await appdata.create_invitation(alice, "gina@acme.test", "member")
    assert [i.invitation_id for i in await appdata.list_invitations("org_acme")] == [again.invitation_id]


@pytest.mark.parametrize(
    ("email", "role", "error", "match"),
    [
        ("gina@acme.test", "member", GuardRailViolation, "already has a pending invitation"),
        ("BOB@acme.test", "viewer", GuardRailViolation, "already a member"),
        ("new@acme.test", "owner", GuardRailViolation, "above your own"),
        ("not-an-address", "member", InvalidInput, "not a valid email"),
        ("two@@acme.test", "member", InvalidInput, "not a valid email"),
        ("x@acme", "member", InvalidInput, "not a valid email"),
        ("new@acme.test", "superuser", InvalidInput, "Unknown role"),
    ],
)
async def test_invitations_refused_by_the_guard_rails(
    appdata: AppData, email: str, role: Any, error: type[Exception], match: str
) -> None:
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(error, match=match):
        await appdata.create_invitation(alice, email, role)
    assert [i.email for i in await appdata.list_invitations("org_acme")] == ["gina@acme.test"]


def test_email_addresses_are_normalized_and_validated() -> None:
    assert normalize_email("  Gina.Lee+chat@Acme.Test ") == "gina.lee+chat@acme.test"
    for bad in ("", "a@b", "a b@acme.test", "@acme.test", "a@.test", "a@acme..test", "x" * 65 + "@acme.test"):
        with pytest.raises(InvalidInput):
            normalize_email(bad)


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(dynamodb: Any) -> None:
    add_member(dynamodb, "org_acme", "user_ada", "admin")
    racing = AppData(AtomicClient(dynamodb, hold_commits=2), APP_TABLE)
    alice = await caller(racing, "org_acme", "user_alice")
    ada = await caller(racing, "org_acme", "user_ada")

    outcomes = await asyncio.gather(
        racing.update_member_role(alice, "member", user_id="user_ada"),
        racing.update_member_role(ada, "member", user_id="user_alice"),
        return_exceptions=True,
    )

    failures = [o for o in outcomes if isinstance(o, Exception)]
    assert len(failures) == 1
    assert isinstance(failures[0], PermissionDenied | GuardRailViolation)
    admins = await racing.list_members("org_acme", role="admin")
    assert len(admins) == 1


async def test_two_concurrent_invitations_of_one_address_create_one(dynamodb: Any) -> None:
    racing = AppData(AtomicClient(dynamodb, hold_commits=2), APP_TABLE)
    alice = await caller(racing, "org_acme", "user_alice")
    outcomes = await asyncio.gather(
        racing.create_invitation(alice, "ivy@acme.test", "member"),
        racing.create_invitation(alice, "ivy@acme.test", "viewer"),
        return_exceptions=True,
    )
    assert sum(isinstance(o, GuardRailViolation) for o in outcomes) == 1
    assert [i.email for i in await racing.list_invitations("org_acme")].count("ivy@acme.test") == 1


async def test_an_organization_that_keeps_changing_yields_conflict_and_no_write(dynamodb: Any) -> None:
    busy = InterferingClient(dynamodb)
    appdata = AppData(busy, APP_TABLE)
    alice = await caller(appdata, "org_acme", "user_alice")
    with pytest.raises(Conflict):
        await appdata.update_member_role(alice, "admin", user_id="user_bob")
    assert busy.attempts > 1
    assert (await appdata.get_member("org_acme", user_id="user_bob")).role == "member"


async def test_an_unreachable_table_is_reported_as_unavailable(dynamodb: Any) -> None:
    missing = AppData(dynamodb, "NoSuchTable")
    with pytest.raises(Unavailable):
        await missing.get_caller("org_acme", "user_alice")
    with pytest.raises(Unavailable):
        await missing.list_members("org_acme")


async def test_an_unreachable_endpoint_is_reported_as_unavailable() -> None:
    from botocore.config import Config

    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1}),
    )
    with pytest.raises(Unavailable):
        await AppData(client, APP_TABLE).get_caller("org_acme", "user_alice")

"""What the `BuiltinTools` tells the approval flow before anything runs: whether a call can run at all (refusal),
a tool's annotations, and a change described in plain words naming the person it touches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from chatbot.appdata import AppData, Invitation
from chatbot.approval import needs_approval
from chatbot.errors import Unavailable
from chatbot.permissions import Caller
from chatbot.tools import TOOLS, BuiltinTools

from tests.fakes.dynamodb import APP_TABLE


@pytest.fixture
async def builtin(appdata: AppData) -> AsyncIterator[BuiltinTools]:
    async with BuiltinTools(appdata) as box:
        yield box


async def who(appdata: AppData, org_id: str, user_id: str) -> Caller:
    caller = await appdata.get_caller(org_id, user_id)
    assert caller is not None
    return caller


async def alice(appdata: AppData) -> Caller:
    return await who(appdata, "org_acme", "user_alice")


# A valid call of each tool, for an admin of Acme.
VALID = {
    "organization_get": {},
    "member_list": {"role": "admin"},
    "member_get": {"email": "bob@acme.test"},
    "member_update_role": {"email": "bob@acme.test", "role": "admin"},
    "member_remove": {"user_id": "user_bob"},
    "invitation_list": {},
    "invitation_create": {"email": "new@acme.test", "role": "member"},
    "invitation_cancel": {"invitation_id": "inv_acme_gina"},
}


# ------------------------------------------------------------------------------------------ refusal


async def test_every_tool_called_properly_by_an_admin_is_not_refused(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    assert sorted(VALID) == sorted(spec.name for spec in TOOLS)
    caller = await alice(appdata)
    for name, arguments in VALID.items():
        assert builtin.refusal(caller, name, arguments) is None, name


async def test_an_unknown_tool_is_refused_naming_the_tools_the_caller_may_use(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    refused = builtin.refusal(await who(appdata, "org_acme", "user_bob"), "drop_database", {})
    assert refused is not None
    assert refused.is_error
    assert refused.outcome == "error"
    assert "Unknown tool 'drop_database'" in refused.content
    assert "member_list" in refused.content
    assert "member_remove" not in refused.content


async def test_a_tool_the_role_does_not_permit_is_refused_as_not_permitted(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    bob = await who(appdata, "org_acme", "user_bob")
    refused = builtin.refusal(bob, "member_remove", {"user_id": "user_erin"})
    assert refused is not None
    assert refused.is_error
    assert refused.status == "not_permitted"
    assert refused.outcome == "not_permitted"
    assert "member:delete" in refused.content and "member" in refused.content


async def test_the_role_is_checked_before_the_arguments(appdata: AppData, builtin: BuiltinTools) -> None:
    erin = await who(appdata, "org_acme", "user_erin")
    refused = builtin.refusal(erin, "invitation_create", {"org_id": "org_globex", "role": "boss"})
    assert refused is not None and refused.status == "not_permitted"


async def test_an_unknown_argument_is_refused_and_an_organization_argument_is_explained(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    caller = await alice(appdata)
    refused = builtin.refusal(caller, "member_remove", {"user_id": "user_bob", "org_id": "org_globex"})
    assert refused is not None and refused.is_error and refused.status == ""
    assert "unknown org_id" in refused.content
    assert "organization is always your own" in refused.content
    other = builtin.refusal(caller, "member_list", {"rolez": "admin"})
    assert other is not None and "unknown rolez" in other.content
    assert "organization" not in other.content


@pytest.mark.parametrize(
    ("name", "arguments", "needle"),
    [
        ("member_update_role", {"email": "bob@acme.test", "role": "boss"}, "role"),
        ("member_update_role", {"email": "bob@acme.test"}, "role: Field required"),
        ("invitation_create", {"email": "x", "role": "member"}, "email"),
        ("invitation_create", {"email": "new@acme.test", "role": 7}, "role"),
        ("member_get", {"user_id": ""}, "user_id"),
        ("member_remove", {"email": "b" * 300}, "email"),
        ("member_list", ["admin"], "must be a JSON object"),
        ("member_list", None, "must be a JSON object"),
    ],
)
async def test_an_invalid_argument_value_is_refused_before_anything_runs(
    appdata: AppData, builtin: BuiltinTools, name: str, arguments: Any, needle: str
) -> None:
    refused = builtin.refusal(await alice(appdata), name, arguments)
    assert refused is not None
    assert refused.is_error and refused.status == ""
    assert refused.content.startswith(f"Invalid arguments for {name}")
    assert needle in refused.content
    assert "errors.pydantic.dev" not in refused.content


async def test_a_refused_change_is_not_applied_when_called(appdata: AppData, builtin: BuiltinTools) -> None:
    caller = await alice(appdata)
    result = await builtin.call(caller, "member_update_role", {"email": "bob@acme.test", "role": "boss"})
    assert result.is_error
    assert (await appdata.get_member("org_acme", email="bob@acme.test")).role == "member"


# -------------------------------------------------------------------------------------- annotations


async def test_each_tool_has_the_annotations_the_approval_policy_reads(builtin: BuiltinTools) -> None:
    for name in ("organization_get", "member_list", "member_get", "invitation_list"):
        annotations = builtin.annotations(name)
        assert annotations is not None and annotations.read_only_hint is True, name
    for name in ("member_update_role", "member_remove", "invitation_cancel"):
        annotations = builtin.annotations(name)
        assert annotations is not None, name
        assert annotations.read_only_hint is False and annotations.destructive_hint is True, name
    created = builtin.annotations("invitation_create")
    assert created is not None
    assert created.read_only_hint is False and created.destructive_hint is False


async def test_an_unknown_tool_has_no_annotations(builtin: BuiltinTools) -> None:
    assert builtin.annotations("drop_database") is None


async def test_with_the_annotations_only_changes_wait_and_only_destructive_ones_under_destructive(
    builtin: BuiltinTools,
) -> None:
    waits = {name: needs_approval(builtin.annotations(name), "writes") for name in VALID}
    assert {name for name, yes in waits.items() if yes} == {
        "member_update_role",
        "member_remove",
        "invitation_create",
        "invitation_cancel",
    }
    destructive = {name for name in VALID if needs_approval(builtin.annotations(name), "destructive")}
    assert destructive == {"member_update_role", "member_remove", "invitation_cancel"}


# ------------------------------------------------------------------------------------------ summaries


async def test_a_role_change_is_summarized_naming_the_person_their_role_and_the_organization(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    summary = await builtin.summary(
        await alice(appdata), "member_update_role", {"email": "bob@acme.test", "role": "admin"}
    )
    assert summary == "Change the role of Bob Brown (bob@acme.test) from member to admin in Acme Inc"


async def test_a_role_change_by_user_id_is_summarized_the_same_way(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    summary = await builtin.summary(
        await alice(appdata), "member_update_role", {"user_id": "user_erin", "role": "member"}
    )
    assert summary == "Change the role of Erin Evans (erin@acme.test) from viewer to member in Acme Inc"


async def test_a_removal_is_summarized_naming_the_person(appdata: AppData, builtin: BuiltinTools) -> None:
    summary = await builtin.summary(await alice(appdata), "member_remove", {"user_id": "user_bob"})
    assert summary == "Remove Bob Brown (bob@acme.test) from Acme Inc"


async def test_a_change_to_someone_who_is_not_a_member_says_so(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    caller = await alice(appdata)
    removal = await builtin.summary(caller, "member_remove", {"email": "ghost@acme.test"})
    assert removal == "Remove ghost@acme.test (no such member now) from Acme Inc"
    change = await builtin.summary(caller, "member_update_role", {"user_id": "user_carol", "role": "admin"})
    # Carol is a member of Globex, not of the caller's organization.
    assert change == "Change the role of user_carol (no such member now) to admin in Acme Inc"


async def test_an_invitation_is_summarized_with_its_address_organization_and_role(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    summary = await builtin.summary(
        await alice(appdata), "invitation_create", {"email": "new@acme.test", "role": "member"}
    )
    assert summary == "Invite new@acme.test to Acme Inc as member"


async def test_a_cancellation_by_id_is_summarized_with_the_invited_address(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    caller = await alice(appdata)
    by_id = await builtin.summary(caller, "invitation_cancel", {"invitation_id": "inv_acme_gina"})
    assert by_id == "Cancel the invitation of gina@acme.test to Acme Inc"
    by_email = await builtin.summary(caller, "invitation_cancel", {"email": "gina@acme.test"})
    assert by_email == by_id


async def test_a_cancellation_of_an_unknown_invitation_says_so(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    summary = await builtin.summary(await alice(appdata), "invitation_cancel", {"invitation_id": "inv_nope"})
    assert summary == "Cancel the invitation of inv_nope (no such pending invitation now) to Acme Inc"


async def test_a_summary_never_reaches_into_another_organization(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    carol = await who(appdata, "org_globex", "user_carol")
    summary = await builtin.summary(carol, "invitation_cancel", {"invitation_id": "inv_acme_gina"})
    assert "gina@acme.test" not in summary
    assert summary.endswith("to Globex Corporation")
    removal = await builtin.summary(carol, "member_remove", {"email": "bob@acme.test"})
    assert "Bob Brown" not in removal


async def test_a_tool_without_its_own_summary_gets_the_generic_one(
    appdata: AppData, builtin: BuiltinTools
) -> None:
    summary = await builtin.summary(await alice(appdata), "member_list", {"role": "admin"})
    assert summary == "Member list\nrole: admin"
    assert await builtin.summary(await alice(appdata), "organization_get", {}) == "Organization get"


class UnreachableAppData(AppData):
    """Application data whose store cannot be reached for reads."""

    async def list_invitations(self, org_id: str) -> list[Invitation]:
        raise Unavailable()


async def test_a_summary_whose_data_cannot_be_read_falls_back_to_the_generic_one(
    dynamodb: Any, appdata: AppData
) -> None:
    async with BuiltinTools(UnreachableAppData(dynamodb, APP_TABLE)) as box:
        summary = await box.summary(
            await alice(appdata), "invitation_cancel", {"invitation_id": "inv_acme_gina"}
        )
    assert summary == "Invitation cancel\ninvitation_id: inv_acme_gina"

"""The application's data (organizations, members, invitations) in one DynamoDB table, scoped by organization.

Single-table layout, one partition per organization, so every read and write names its organization and
no operation can reach another tenant's items:

| pk             | sk                   | item                                                        |
| -------------- | -------------------- | ----------------------------------------------------------- |
| `org#<org_id>` | `org`                | org_id, name, created_at, version (bumped by every change)  |
| `org#<org_id>` | `member#<user_id>`   | user_id, name, email, role, joined_at                       |
| `org#<org_id>` | `invitation#<id>`    | invitation_id, email, role, status, invited_by, created_at  |

Changes use optimistic concurrency: read the organization's `version`, then its items, check the guard
rails on that snapshot, and commit in one `TransactWriteItems` conditioned on the version being unchanged.
Two concurrent changes to one organization therefore serialize: the loser re-reads and re-checks, so two
admins demoting each other at once cannot leave the organization without an admin.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, TypeVar

from . import dynamodb
from .errors import Conflict, GuardRailViolation, InvalidInput, PermissionDenied, RecordNotFound
from .permissions import DEFAULT_ROLE_TABLE, RANK, Caller, Role, RoleTable, is_role

logger = logging.getLogger(__name__)

T = TypeVar("T")
Item = dict[str, Any]
InvitationStatus = Literal["pending", "canceled"]

MANAGER_ROLES: frozenset[Role] = frozenset({"owner", "admin"})
MAX_COMMIT_ATTEMPTS = 6

# Pragmatic address check (RFC 5321 lengths, a dotted domain); deliverability is the mailer's business.
_EMAIL = re.compile(
    r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)


class _Record:
    """A record the tools report: `to_dict` is its JSON-ready view, with `id_field` (if any) named `id`."""

    __slots__ = ()
    id_field: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        view = asdict(self)  # type: ignore[call-overload]
        return {"id": view.pop(self.id_field), **view} if self.id_field else view


@dataclass(frozen=True, slots=True)
class Organization(_Record):
    """An organization as the tools report it."""

    id_field = "org_id"
    org_id: str
    name: str
    created_at: str
    member_count: int


@dataclass(frozen=True, slots=True)
class Member(_Record):
    """One user's membership of an organization."""

    user_id: str
    name: str
    email: str
    role: Role
    joined_at: str


@dataclass(frozen=True, slots=True)
class Invitation(_Record):
    """An invitation of an email address to join an organization with a role."""

    id_field = "invitation_id"
    invitation_id: str
    email: str
    role: Role
    status: InvitationStatus
    invited_by: str
    created_at: str


def now_iso() -> str:
    """The current UTC time as ISO 8601 with seconds precision (`2025-01-31T09:00:00Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_email(email: str) -> str:
    """`email` trimmed and lower-cased, or `InvalidInput` when it is not a plausible address."""
    value = email.strip().lower()
    local, _, domain = value.partition("@")
    if len(value) > 254 or len(local) > 64 or not _EMAIL.fullmatch(value) or not domain:
        raise InvalidInput(f"{email!r} is not a valid email address.")
    return value


def org_pk(org_id: str) -> str:
    """The partition key of an organization."""
    return f"org#{org_id}"


ORG_SK = "org"
MEMBER_PREFIX = "member#"
INVITATION_PREFIX = "invitation#"


def app_key(org_id: str, sk: str) -> Item:
    """The DynamoDB key of an item of the organization `org_id`."""
    return {"pk": {"S": org_pk(org_id)}, "sk": {"S": sk}}


def exactly_one(**identifiers: str | None) -> None:
    """Refuse (`InvalidInput`) unless exactly one of the named identifiers is given."""
    if sum(value is not None for value in identifiers.values()) != 1:
        raise InvalidInput(f"Give exactly one of {' or '.join(identifiers)}.")


def org_item(org_id: str, name: str, created_at: str) -> Item:
    """The DynamoDB item of a new organization."""
    return {
        **app_key(org_id, ORG_SK),
        "org_id": {"S": org_id},
        "name": {"S": name},
        "created_at": {"S": created_at},
        "version": {"N": "0"},
    }


def _strings(record: Any) -> Item:
    """A dataclass's fields as DynamoDB string attributes."""
    return {name: {"S": str(value)} for name, value in asdict(record).items()}


def member_item(org_id: str, member: Member) -> Item:
    """The DynamoDB item of a membership."""
    return {**app_key(org_id, MEMBER_PREFIX + member.user_id), **_strings(member)}


def invitation_item(org_id: str, invitation: Invitation) -> Item:
    """The DynamoDB item of an invitation."""
    return {**app_key(org_id, INVITATION_PREFIX + invitation.invitation_id), **_strings(invitation)}


def _s(item: Item, name: str) -> str:
    value = item.get(name, {}).get("S", "")
    return str(value)


def _role(item: Item) -> Role:
    role = _s(item, "role")
    if not is_role(role):
        raise ValueError(f"unknown role {role!r} in item {_s(item, 'pk')}/{_s(item, 'sk')}")
    return role  # type: ignore[return-value]


def _member(item: Item) -> Member:
    return Member(
        user_id=_s(item, "user_id"),
        name=_s(item, "name"),
        email=_s(item, "email"),
        role=_role(item),
        joined_at=_s(item, "joined_at"),
    )


def _invitation(item: Item) -> Invitation:
    status = _s(item, "status")
    return Invitation(
        invitation_id=_s(item, "invitation_id"),
        email=_s(item, "email"),
        role=_role(item),
        status="canceled" if status == "canceled" else "pending",
        invited_by=_s(item, "invited_by"),
        created_at=_s(item, "created_at"),
    )


def _by_name(member: Member) -> tuple[str, str]:
    return (member.name.casefold(), member.user_id)


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """An organization's items read after its version, so a commit conditioned on that version is safe."""

    org_id: str
    version: int
    name: str
    created_at: str
    members: dict[str, Member]
    invitations: dict[str, Invitation]
    roles: RoleTable

    def member(self, *, user_id: str | None, email: str | None) -> Member:
        exactly_one(user_id=user_id, email=email)
        if user_id is not None:
            found = self.members.get(user_id)
        else:
            wanted = (email or "").strip().lower()
            found = next((m for m in self.members.values() if m.email.lower() == wanted), None)
        if found is None:
            raise RecordNotFound(f"No member {user_id or email!r} in this organization.")
        return found

    def actor(self, caller: Caller, permission: str) -> Member:
        """The acting user's membership as of now (not as of their token), holding `permission`."""
        member = self.members.get(caller.user_id)
        if member is None:
            raise PermissionDenied("You are no longer a member of this organization.")
        if permission not in self.roles.permissions(member.role):
            raise PermissionDenied(f"Your role ({member.role}) does not allow {permission}.")
        return member


def check_keeps_owner_and_admin(members: Iterable[Member], target: Member, new_role: Role | None) -> None:
    """Refuse giving `target` `new_role` (None: removing them) if that takes away the organization's last owner
    or its last owner-or-admin.

    With today's rules this cannot trigger on a fresh snapshot (only an owner or admin may change an owner or
    admin, and not themselves, so another one remains); it keeps the invariant whatever the role table grants.
    """
    roles = [m.role for m in members]
    if target.role == "owner" and new_role != "owner" and roles.count("owner") <= 1:
        raise GuardRailViolation(f"{target.name} is the organization's last owner and must stay an owner.")
    managers = sum(1 for role in roles if role in MANAGER_ROLES)
    if target.role in MANAGER_ROLES and new_role not in MANAGER_ROLES and managers <= 1:
        raise GuardRailViolation(
            f"{target.name} is the organization's last owner or admin and must stay one."
        )


def _check_may_manage(actor: Member, target: Member, verb: str, own: str) -> None:
    if target.user_id == actor.user_id:
        raise GuardRailViolation(f"You cannot {own}; another owner or admin has to do it.")
    if RANK[target.role] > RANK[actor.role]:
        raise GuardRailViolation(f"As {actor.role} you cannot {verb} a member whose role is {target.role}.")


def _check_may_grant(actor: Member, role: Role) -> None:
    if RANK[role] > RANK[actor.role]:
        raise GuardRailViolation(
            f"You cannot grant the role {role}: it is above your own role ({actor.role})."
        )


Plan = Callable[["_Snapshot"], tuple[list[dict[str, Any]], T]]


class AppData:
    """Repository over the application-data table; every method is scoped to one organization."""

    def __init__(
        self, client: Any, table_name: str = "AppData", roles: RoleTable = DEFAULT_ROLE_TABLE
    ) -> None:
        self._client = client
        self._table = table_name
        # What each role may do (`CHATBOT_ROLES`): a membership's role is checked against it at every use.
        self._roles = roles

    # --- reads -------------------------------------------------------------------------------------

    async def _query(self, org_id: str, prefix: str | None, **extra: Any) -> list[Item]:
        """The pages of a query of the organization's partition for the sort keys starting with `prefix` (all
        if None)."""
        condition, values = "pk = :pk", {":pk": {"S": org_pk(org_id)}}
        if prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        return await dynamodb.pages(
            self._client.query,
            what="application data query",
            TableName=self._table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
            ConsistentRead=True,
            **extra,
        )

    async def _items(self, org_id: str, prefix: str | None) -> list[Item]:
        """Every item of the organization whose sort key starts with `prefix` (all if None)."""
        return [item for page in await self._query(org_id, prefix) for item in page.get("Items", [])]

    async def _get(self, org_id: str, sk: str) -> Item | None:
        response = await dynamodb.call(
            self._client.get_item,
            what="application data read",
            TableName=self._table,
            Key=app_key(org_id, sk),
            ConsistentRead=True,
        )
        item: Item | None = response.get("Item")
        return item

    async def get_caller(self, org_id: str, user_id: str) -> Caller | None:
        """The signed-in user with the role of their membership record, or None if not a member of `org_id`."""
        response = await dynamodb.call(
            self._client.transact_get_items,
            what="membership read",
            TransactItems=[
                {"Get": {"TableName": self._table, "Key": app_key(org_id, ORG_SK)}},
                {"Get": {"TableName": self._table, "Key": app_key(org_id, MEMBER_PREFIX + user_id)}},
            ],
        )
        org, member = (r.get("Item") for r in response["Responses"])
        if not org or not member:
            return None
        role = _s(member, "role")
        if not is_role(role):
            logger.warning(
                "membership %s/%s has unknown role %r; treated as no membership", org_id, user_id, role
            )
            return None
        return Caller(
            user_id=user_id,
            org_id=org_id,
            role=role,
            name=_s(member, "name"),
            email=_s(member, "email"),
            org_name=_s(org, "name"),
            granted=self._roles.permissions(role),
        )

    async def get_organization(self, org_id: str) -> Organization:
        """The organization with its member count; `RecordNotFound` if it does not exist."""
        org = await self._get(org_id, ORG_SK)
        if org is None:
            raise RecordNotFound("The organization does not exist.")
        pages = await self._query(org_id, MEMBER_PREFIX, Select="COUNT")
        count = sum(int(page.get("Count", 0)) for page in pages)
        return Organization(
            org_id=org_id, name=_s(org, "name"), created_at=_s(org, "created_at"), member_count=count
        )

    async def list_members(self, org_id: str, role: Role | None = None) -> list[Member]:
        """The organization's members sorted by name, optionally only those with `role`."""
        members = [_member(item) for item in await self._items(org_id, MEMBER_PREFIX)]
        return sorted((m for m in members if role is None or m.role == role), key=_by_name)

    async def get_member(
        self, org_id: str, *, user_id: str | None = None, email: str | None = None
    ) -> Member:
        """One member by user id or (case-insensitive) email; `RecordNotFound` if there is none."""
        exactly_one(user_id=user_id, email=email)
        if user_id is not None:
            item = await self._get(org_id, MEMBER_PREFIX + user_id)
            if item is None:
                raise RecordNotFound(f"No member {user_id!r} in this organization.")
            return _member(item)
        wanted = (email or "").strip().lower()
        for member in await self.list_members(org_id):
            if member.email.lower() == wanted:
                return member
        raise RecordNotFound(f"No member {email!r} in this organization.")

    async def list_invitations(self, org_id: str) -> list[Invitation]:
        """The organization's pending invitations, oldest first."""
        items = await self._items(org_id, INVITATION_PREFIX)
        pending = [inv for inv in map(_invitation, items) if inv.status == "pending"]
        return sorted(pending, key=lambda inv: (inv.created_at, inv.invitation_id))

    # --- changes -----------------------------------------------------------------------------------

    async def _snapshot(self, org_id: str) -> _Snapshot:
        # The version is read first: any change committed after this read bumps it and voids our commit.
        org = await self._get(org_id, ORG_SK)
        if org is None:
            raise RecordNotFound("The organization does not exist.")
        members: dict[str, Member] = {}
        invitations: dict[str, Invitation] = {}
        for item in await self._items(org_id, None):
            sk = _s(item, "sk")
            if sk.startswith(MEMBER_PREFIX):
                member = _member(item)
                members[member.user_id] = member
            elif sk.startswith(INVITATION_PREFIX):
                invitation = _invitation(item)
                invitations[invitation.invitation_id] = invitation
        return _Snapshot(
            org_id=org_id,
            version=int(org["version"]["N"]),
            name=_s(org, "name"),
            created_at=_s(org, "created_at"),
            members=members,
            invitations=invitations,
            roles=self._roles,
        )

    async def _commit(self, snapshot: _Snapshot, writes: list[dict[str, Any]]) -> bool:
        """Apply `writes` if the organization is still at the snapshot's version; False if it moved on."""
        bump = {
            "Update": {
                "TableName": self._table,
                "Key": app_key(snapshot.org_id, ORG_SK),
                "UpdateExpression": "SET version = version + :one",
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":seen": {"N": str(snapshot.version)}},
            }
        }
        try:
            await dynamodb.call(
                self._client.transact_write_items,
                what="application data change",
                TransactItems=[bump, *writes],
                ClientRequestToken=str(uuid.uuid4()),
            )
        except dynamodb.Refused:
            return False
        return True

    async def _change(self, org_id: str, plan: Plan[T]) -> T:
        """Read a snapshot, let `plan` check the rules and name the writes, commit; re-read if it went stale."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            snapshot = await self._snapshot(org_id)
            writes, result = plan(snapshot)
            if not writes or await self._commit(snapshot, writes):
                return result
        raise Conflict("The organization was being changed at the same time; please try again.")

    def _put(self, item: Item, condition: str) -> dict[str, Any]:
        return {"Put": {"TableName": self._table, "Item": item, "ConditionExpression": condition}}

    async def update_member_role(
        self, actor: Caller, role: Role, *, user_id: str | None = None, email: str | None = None
    ) -> tuple[Member, Role]:
        """Give a member of the actor's organization `role`; returns the updated member and their previous role.

        Refused (`GuardRailViolation`) when the actor targets themselves, grants a role above their own,
        changes someone ranked above them, or would remove the last owner or the last owner-or-admin.
        """
        if not is_role(role):
            raise InvalidInput(f"Unknown role {role!r}; use one of owner, admin, member, viewer.")

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], tuple[Member, Role]]:
            me = snapshot.actor(actor, "member:update")
            target = snapshot.member(user_id=user_id, email=email)
            _check_may_manage(me, target, "change the role of", "change your own role")
            _check_may_grant(me, role)
            if target.role == role:
                return [], (target, target.role)
            check_keeps_owner_and_admin(snapshot.members.values(), target, role)
            updated = Member(target.user_id, target.name, target.email, role, target.joined_at)
            write = self._put(member_item(snapshot.org_id, updated), "attribute_exists(pk)")
            return [write], (updated, target.role)

        return await self._change(actor.org_id, plan)

    async def remove_member(
        self, actor: Caller, *, user_id: str | None = None, email: str | None = None
    ) -> Member:
        """Remove a member from the actor's organization; returns who was removed. Same guard rails as a demotion."""

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], Member]:
            me = snapshot.actor(actor, "member:delete")
            target = snapshot.member(user_id=user_id, email=email)
            _check_may_manage(me, target, "remove", "remove yourself")
            check_keeps_owner_and_admin(snapshot.members.values(), target, None)
            write = {
                "Delete": {
                    "TableName": self._table,
                    "Key": app_key(snapshot.org_id, MEMBER_PREFIX + target.user_id),
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            return [write], target

        return await self._change(actor.org_id, plan)

    async def create_invitation(self, actor: Caller, email: str, role: Role) -> Invitation:
        """Invite `email` to the actor's organization with `role` (not above the actor's own).

        Refused when the address is invalid, already belongs to a member, or already has a pending invitation.
        """
        address = normalize_email(email)
        if not is_role(role):
            raise InvalidInput(f"Unknown role {role!r}; use one of owner, admin, member, viewer.")

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], Invitation]:
            me = snapshot.actor(actor, "invitation:create")
            _check_may_grant(me, role)
            if any(m.email.lower() == address for m in snapshot.members.values()):
                raise GuardRailViolation(f"{address} is already a member of this organization.")
            if any(i.email == address and i.status == "pending" for i in snapshot.invitations.values()):
                raise GuardRailViolation(f"{address} already has a pending invitation.")
            invitation = Invitation(
                invitation_id=f"inv_{secrets.token_hex(8)}",
                email=address,
                role=role,
                status="pending",
                invited_by=me.user_id,
                created_at=now_iso(),
            )
            write = self._put(invitation_item(snapshot.org_id, invitation), "attribute_not_exists(pk)")
            return [write], invitation

        return await self._change(actor.org_id, plan)

    async def cancel_invitation(
        self, actor: Caller, *, invitation_id: str | None = None, email: str | None = None
    ) -> Invitation:
        """Cancel a pending invitation of the actor's organization, found by id or invited email."""
        exactly_one(invitation_id=invitation_id, email=email)

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], Invitation]:
            snapshot.actor(actor, "invitation:cancel")
            pending = [i for i in snapshot.invitations.values() if i.status == "pending"]
            if invitation_id is not None:
                found = next((i for i in pending if i.invitation_id == invitation_id), None)
            else:
                wanted = (email or "").strip().lower()
                found = next((i for i in pending if i.email == wanted), None)
            if found is None:
                raise RecordNotFound(
                    f"No pending invitation {invitation_id or email!r} in this organization."
                )
            canceled = Invitation(
                found.invitation_id, found.email, found.role, "canceled", found.invited_by, found.created_at
            )
            write = self._put(invitation_item(snapshot.org_id, canceled), "attribute_exists(pk)")
            return [write], canceled

        return await self._change(actor.org_id, plan)

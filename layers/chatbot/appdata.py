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
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Literal, TypeVar

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError

from .errors import Unavailable
from .permissions import RANK, Caller, Role, is_role

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


class AppDataError(Exception):
    """A refused or failed application-data operation; the message is fit to show the user."""


class NotFound(AppDataError):
    """The organization, member or invitation does not exist (in the caller's organization)."""


class InvalidInput(AppDataError):
    """An argument is malformed: a bad email address, an unknown role, neither or both identifiers."""


class GuardRailViolation(AppDataError):
    """The change is refused by a rule: self-change, last owner/admin, role above one's own, duplicates."""


class PermissionDenied(AppDataError):
    """The acting user's current role does not allow the change (or they are no longer a member)."""


class Conflict(AppDataError):
    """The organization kept changing concurrently and the change could not be applied; try again."""


@dataclass(frozen=True, slots=True)
class Organization:
    """An organization as the tools report it."""

    org_id: str
    name: str
    created_at: str
    member_count: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.org_id,
            "name": self.name,
            "member_count": self.member_count,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class Member:
    """One user's membership of an organization."""

    user_id: str
    name: str
    email: str
    role: Role
    joined_at: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Invitation:
    """An invitation of an email address to join an organization with a role."""

    invitation_id: str
    email: str
    role: Role
    status: InvitationStatus
    invited_by: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "id": self.invitation_id,
            "email": self.email,
            "role": self.role,
            "status": self.status,
            "invited_by": self.invited_by,
            "created_at": self.created_at,
        }


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


def org_item(org_id: str, name: str, created_at: str) -> Item:
    """The DynamoDB item of a new organization."""
    return {
        "pk": {"S": org_pk(org_id)},
        "sk": {"S": ORG_SK},
        "org_id": {"S": org_id},
        "name": {"S": name},
        "created_at": {"S": created_at},
        "version": {"N": "0"},
    }


def member_item(org_id: str, member: Member) -> Item:
    """The DynamoDB item of a membership."""
    return {
        "pk": {"S": org_pk(org_id)},
        "sk": {"S": MEMBER_PREFIX + member.user_id},
        "user_id": {"S": member.user_id},
        "name": {"S": member.name},
        "email": {"S": member.email},
        "role": {"S": member.role},
        "joined_at": {"S": member.joined_at},
    }


def invitation_item(org_id: str, invitation: Invitation) -> Item:
    """The DynamoDB item of an invitation."""
    return {
        "pk": {"S": org_pk(org_id)},
        "sk": {"S": INVITATION_PREFIX + invitation.invitation_id},
        "invitation_id": {"S": invitation.invitation_id},
        "email": {"S": invitation.email},
        "role": {"S": invitation.role},
        "status": {"S": invitation.status},
        "invited_by": {"S": invitation.invited_by},
        "created_at": {"S": invitation.created_at},
    }


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

    def member(self, *, user_id: str | None, email: str | None) -> Member:
        if (user_id is None) == (email is None):
            raise InvalidInput("Give exactly one of user_id or email.")
        if user_id is not None:
            found = self.members.get(user_id)
        else:
            wanted = (email or "").strip().lower()
            found = next((m for m in self.members.values() if m.email.lower() == wanted), None)
        if found is None:
            raise NotFound(f"No member {user_id or email!r} in this organization.")
        return found

    def actor(self, caller: Caller, permission: str) -> Member:
        """The acting user's membership as of now (not as of their token), holding `permission`."""
        member = self.members.get(caller.user_id)
        if member is None:
            raise PermissionDenied("You are no longer a member of this organization.")
        if not Caller(member.user_id, self.org_id, member.role).can(permission):
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


class _Retry(Exception):
    """The snapshot went stale before the commit: read again."""


class AppData:
    """Repository over the application-data table; every method is scoped to one organization."""

    def __init__(self, client: Any, table_name: str = "AppData") -> None:
        self._client = client
        self._table = table_name

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run blocking boto3 work in a thread; a DynamoDB failure becomes `Unavailable` (fail closed)."""
        try:
            return await anyio.to_thread.run_sync(fn)
        except ClientError as exc:
            # A malformed request is our bug, not an outage: let it surface as one.
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise
            logger.exception("application data store failed")
            raise Unavailable("The application data store is unreachable right now.") from exc
        except BotoCoreError as exc:
            logger.exception("application data store unreachable")
            raise Unavailable("The application data store is unreachable right now.") from exc

    # --- reads -------------------------------------------------------------------------------------

    def _query(self, org_id: str, prefix: str | None) -> list[Item]:
        """Every item of the organization's partition whose sort key starts with `prefix` (all if None)."""
        items: list[Item] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": org_pk(org_id)}},
            "ConsistentRead": True,
        }
        if prefix is not None:
            kwargs["KeyConditionExpression"] += " AND begins_with(sk, :prefix)"
            kwargs["ExpressionAttributeValues"][":prefix"] = {"S": prefix}
        while True:
            page = self._client.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get_org_item(self, org_id: str) -> Item | None:
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": org_pk(org_id)}, "sk": {"S": ORG_SK}}, ConsistentRead=True
        )
        item: Item | None = response.get("Item")
        return item

    def _get_caller(self, org_id: str, user_id: str) -> Caller | None:
        response = self._client.transact_get_items(
            TransactItems=[
                {
                    "Get": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": org_pk(org_id)}, "sk": {"S": ORG_SK}},
                    }
                },
                {
                    "Get": {
                        "TableName": self._table,
                        "Key": {"pk": {"S": org_pk(org_id)}, "sk": {"S": MEMBER_PREFIX + user_id}},
                    }
                },
            ]
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
            role=role,  # type: ignore[arg-type]
            name=_s(member, "name"),
            email=_s(member, "email"),
            org_name=_s(org, "name"),
        )

    async def get_caller(self, org_id: str, user_id: str) -> Caller | None:
        """The signed-in user with the role of their membership record, or None if not a member of `org_id`."""
        return await self._run(partial(self._get_caller, org_id, user_id))

    def _get_organization(self, org_id: str) -> Organization:
        org = self._get_org_item(org_id)
        if org is None:
            raise NotFound("The organization does not exist.")
        count = 0
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": org_pk(org_id)}, ":prefix": {"S": MEMBER_PREFIX}},
            "Select": "COUNT",
            "ConsistentRead": True,
        }
        while True:
            page = self._client.query(**kwargs)
            count += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return Organization(
            org_id=org_id, name=_s(org, "name"), created_at=_s(org, "created_at"), member_count=count
        )

    async def get_organization(self, org_id: str) -> Organization:
        """The organization with its member count; `NotFound` if it does not exist."""
        return await self._run(partial(self._get_organization, org_id))

    async def list_members(self, org_id: str, role: Role | None = None) -> list[Member]:
        """The organization's members sorted by name, optionally only those with `role`."""
        items = await self._run(partial(self._query, org_id, MEMBER_PREFIX))
        members = [_member(item) for item in items]
        return sorted((m for m in members if role is None or m.role == role), key=_by_name)

    async def get_member(
        self, org_id: str, *, user_id: str | None = None, email: str | None = None
    ) -> Member:
        """One member by user id or (case-insensitive) email; `NotFound` if there is none."""
        if (user_id is None) == (email is None):
            raise InvalidInput("Give exactly one of user_id or email.")
        if user_id is not None:
            key = {"pk": {"S": org_pk(org_id)}, "sk": {"S": MEMBER_PREFIX + user_id}}
            response = await self._run(
                partial(self._client.get_item, TableName=self._table, Key=key, ConsistentRead=True)
            )
            if "Item" not in response:
                raise NotFound(f"No member {user_id!r} in this organization.")
            return _member(response["Item"])
        wanted = (email or "").strip().lower()
        for member in await self.list_members(org_id):
            if member.email.lower() == wanted:
                return member
        raise NotFound(f"No member {email!r} in this organization.")

    async def list_invitations(self, org_id: str) -> list[Invitation]:
        """The organization's pending invitations, oldest first."""
        items = await self._run(partial(self._query, org_id, INVITATION_PREFIX))
        pending = [inv for inv in map(_invitation, items) if inv.status == "pending"]
        return sorted(pending, key=lambda inv: (inv.created_at, inv.invitation_id))

    # --- changes -----------------------------------------------------------------------------------

    def _snapshot(self, org_id: str) -> _Snapshot:
        # The version is read first: any change committed after this read bumps it and voids our commit.
        org = self._get_org_item(org_id)
        if org is None:
            raise NotFound("The organization does not exist.")
        members: dict[str, Member] = {}
        invitations: dict[str, Invitation] = {}
        for item in self._query(org_id, None):
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
        )

    def _commit(self, snapshot: _Snapshot, writes: list[dict[str, Any]]) -> None:
        bump = {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": org_pk(snapshot.org_id)}, "sk": {"S": ORG_SK}},
                "UpdateExpression": "SET version = version + :one",
                "ConditionExpression": "version = :seen",
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":seen": {"N": str(snapshot.version)}},
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[bump, *writes])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
                if not reasons or set(reasons) <= {
                    "None",
                    "ConditionalCheckFailed",
                    "TransactionConflict",
                    None,
                }:
                    raise _Retry from exc
            raise

    def _change(self, org_id: str, plan: Callable[[_Snapshot], tuple[list[dict[str, Any]], T]]) -> T:
        """Read a snapshot, let `plan` check the rules and name the writes, commit; re-read if it went stale."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            snapshot = self._snapshot(org_id)
            writes, result = plan(snapshot)
            if not writes:
                return result
            try:
                self._commit(snapshot, writes)
            except _Retry:
                continue
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

        return await self._run(partial(self._change, actor.org_id, plan))

    async def remove_member(
        self, actor: Caller, *, user_id: str | None = None, email: str | None = None
    ) -> Member:
        """Remove a member from the actor's organization; returns who was removed. Same guard rails as a demotion."""

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], Member]:
            me = snapshot.actor(actor, "member:delete")
            target = snapshot.member(user_id=user_id, email=email)
            _check_may_manage(me, target, "remove", "remove yourself")
            check_keeps_owner_and_admin(snapshot.members.values(), target, None)
            key = {"pk": {"S": org_pk(snapshot.org_id)}, "sk": {"S": MEMBER_PREFIX + target.user_id}}
            write = {
                "Delete": {
                    "TableName": self._table,
                    "Key": key,
                    "ConditionExpression": "attribute_exists(pk)",
                }
            }
            return [write], target

        return await self._run(partial(self._change, actor.org_id, plan))

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

        return await self._run(partial(self._change, actor.org_id, plan))

    async def cancel_invitation(
        self, actor: Caller, *, invitation_id: str | None = None, email: str | None = None
    ) -> Invitation:
        """Cancel a pending invitation of the actor's organization, found by id or invited email."""
        if (invitation_id is None) == (email is None):
            raise InvalidInput("Give exactly one of invitation_id or email.")

        def plan(snapshot: _Snapshot) -> tuple[list[dict[str, Any]], Invitation]:
            snapshot.actor(actor, "invitation:cancel")
            pending = [i for i in snapshot.invitations.values() if i.status == "pending"]
            if invitation_id is not None:
                found = next((i for i in pending if i.invitation_id == invitation_id), None)
            else:
                wanted = (email or "").strip().lower()
                found = next((i for i in pending if i.email == wanted), None)
            if found is None:
                raise NotFound(f"No pending invitation {invitation_id or email!r} in this organization.")
            canceled = Invitation(
                found.invitation_id, found.email, found.role, "canceled", found.invited_by, found.created_at
            )
            write = self._put(invitation_item(snapshot.org_id, canceled), "attribute_exists(pk)")
            return [write], canceled

        return await self._run(partial(self._change, actor.org_id, plan))

"""Roles and what they may do, as one declarative table (Better Auth style `resource: [actions]`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)

_MANAGE = {
    "chatbot": ["use"],
    "organization": ["read", "update"],
    "member": ["read", "create", "update", "delete"],
    "invitation": ["read", "create", "cancel"],
    "audit": ["read"],
    "usage": ["read"],
}

STATEMENTS: dict[Role, dict[str, list[str]]] = {
    "owner": _MANAGE,
    "admin": _MANAGE,
    "member": {"chatbot": ["use"], "organization": ["read"], "member": ["read"]},
    "viewer": {"organization": ["read"], "member": ["read"]},
}

# Higher grants more; nobody may grant a role ranked above their own.
RANK: dict[Role, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}

PERMISSIONS: dict[Role, frozenset[str]] = {
    role: frozenset(f"{resource}:{action}" for resource, actions in table.items() for action in actions)
    for role, table in STATEMENTS.items()
}


def is_role(value: object) -> bool:
    """Whether `value` names one of the known roles."""
    return value in ROLES


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in user as the server knows them: identity from the token, role from the membership record."""

    user_id: str
    org_id: str
    role: Role
    name: str = ""
    email: str = ""
    org_name: str = ""

    @property
    def permissions(self) -> frozenset[str]:
        """Every `resource:action` this caller's role allows."""
        return PERMISSIONS[self.role]

    def can(self, permission: str) -> bool:
        """Whether this caller's role allows `permission` (`resource:action`)."""
        return permission in PERMISSIONS[self.role]

"""Roles and what they may do, as one declarative table (Better Auth style `resource: [actions]`), which
`CHATBOT_ROLES` can replace as a whole."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

# The roles of the application data (APP_TABLE) that the built-in tools manage and grant.
Role = Literal["owner", "admin", "member", "viewer"]
ROLES: tuple[Role, ...] = get_args(Role)

Statements = Mapping[str, Mapping[str, Iterable[str]]]
"""`{"role": {"resource": ["action", ...]}}`."""

_MANAGE = {
    "chatbot": ["use"],
    "organization": ["read", "update"],
    "member": ["read", "create", "update", "delete"],
    "invitation": ["read", "create", "cancel"],
    "audit": ["read"],
    "usage": ["read"],
}

STATEMENTS: dict[str, dict[str, list[str]]] = {
    "owner": _MANAGE,
    "admin": _MANAGE,
    "member": {"chatbot": ["use"], "organization": ["read"], "member": ["read"]},
    "viewer": {"organization": ["read"], "member": ["read"]},
}

# Higher grants more; nobody may grant a role ranked above their own.
RANK: dict[Role, int] = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}

# Role, resource and action names: what a permission string `resource:action` can be made of.
_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9_.\-:/ ]{1,128}")


class RoleTable:
    """Which `resource:action` permissions each role grants. A role not in the table grants nothing."""

    def __init__(self, statements: Statements) -> None:
        self._grants: dict[str, frozenset[str]] = {
            role: frozenset(
                f"{resource}:{action}" for resource, actions in table.items() for action in actions
            )
            for role, table in statements.items()
        }

    @classmethod
    def parse(cls, raw: str | Mapping[str, Any]) -> RoleTable:
        """A table from `CHATBOT_ROLES` (JSON text, or the decoded object); `ValueError` naming the bad entry."""
        return cls(_checked(raw))

    @property
    def roles(self) -> list[str]:
        """The roles the table names."""
        return list(self._grants)

    def permissions(self, roles: str | Iterable[str]) -> frozenset[str]:
        """Every permission `roles` (one role, or several) grant together; none for a role not in the table."""
        names = [roles] if isinstance(roles, str) else roles
        return frozenset().union(*(self._grants.get(name, frozenset()) for name in names))


DEFAULT_ROLE_TABLE = RoleTable(STATEMENTS)


def _checked(raw: str | Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    """`raw` as statements, each name checked; the first problem is a `ValueError` naming its entry."""
    where = "CHATBOT_ROLES"
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise ValueError(f'{where} must be a JSON object {{"role": {{"resource": ["action", ...]}}}}')
    if not raw:
        raise ValueError(f"{where} names no role: nobody could use the assistant")
    statements: dict[str, dict[str, list[str]]] = {}
    for role, resources in raw.items():
        if not isinstance(role, str) or not _ROLE_NAME.fullmatch(role):
            raise ValueError(
                f"{where}: role {role!r} is not a valid name (1 to 128 letters, digits, spaces or _ . - : /)"
            )
        if not isinstance(resources, Mapping):
            raise ValueError(
                f'{where}: role {role!r} must map resources to actions, e.g. {{"chatbot": ["use"]}}'
            )
        statements[role] = {}
        for resource, actions in resources.items():
            entry = f"{where}: role {role!r}, resource {resource!r}"
            if not isinstance(resource, str) or not _NAME.fullmatch(resource):
                raise ValueError(f"{entry}: not a valid resource name (1 to 64 letters, digits or _ . -)")
            if not isinstance(actions, list) or not all(isinstance(action, str) for action in actions):
                raise ValueError(f'{entry}: the actions must be a list of strings, e.g. ["read"]')
            for action in actions:
                if not _NAME.fullmatch(action):
                    raise ValueError(
                        f"{entry}: action {action!r} is not a valid name (1 to 64 letters, digits or _ . -)"
                    )
            statements[role][resource] = list(actions)
    return statements


def is_role(value: object) -> bool:
    """Whether `value` names one of the application data's roles (the built-in tools' vocabulary)."""
    return value in ROLES


@dataclass(frozen=True, slots=True)
class Caller:
    """The signed-in user as the server knows them: identity from the token, role from the configured source
    (membership record or token claim), and what that role may do under the configured role table."""

    user_id: str
    org_id: str
    role: str
    name: str = ""
    email: str = ""
    org_name: str = ""
    # Set from the configured table by whoever resolves the role; None: the built-in table's grants for
    # `role` (tests and tools that build a caller by hand).
    granted: frozenset[str] | None = None

    @property
    def permissions(self) -> frozenset[str]:
        """Every `resource:action` this caller's role allows."""
        return self.granted if self.granted is not None else DEFAULT_ROLE_TABLE.permissions(self.role)

    def can(self, permission: str) -> bool:
        """Whether this caller's role allows `permission` (`resource:action`)."""
        return permission in self.permissions

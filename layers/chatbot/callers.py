"""Who is calling: the verified identity, with its role from the configured source (`CHATBOT_ROLE_SOURCE`)
and what the role table (`CHATBOT_ROLES`) lets that role do."""

from __future__ import annotations

from typing import Literal

from .appdata import AppData
from .auth import Identity
from .errors import Forbidden
from .permissions import Caller, RoleTable


class Callers:
    """Resolves an `Identity` to a `Caller` at every request.

    `membership`: the role of the membership record (`org_id`, `sub`) in the application data, read each
    time, so a demotion or removal takes effect at the next request. `claim`: the roles the verified token
    names in `AUTH_ROLE_CLAIM`, so no membership record is needed (the host's identity provider is the
    source of truth, and a change shows when it issues the next token).
    """

    def __init__(
        self,
        appdata: AppData,
        roles: RoleTable,
        source: Literal["membership", "claim"] = "membership",
        role_claim: str | None = None,
    ) -> None:
        self._appdata = appdata
        self._roles = roles
        self._source = source
        self._role_claim = role_claim

    async def of(self, identity: Identity) -> Caller:
        """The caller `identity` is, with their role's permissions; 403 `Forbidden` when the source gives
        them no role in their organization."""
        if self._source == "claim":
            if not identity.roles:
                raise Forbidden(f"The token names no role in this organization ('{self._role_claim}' claim).")
            return Caller(
                user_id=identity.user_id,
                org_id=identity.org_id,
                role=",".join(identity.roles),
                name=identity.name,
                email=identity.email,
                granted=self._roles.permissions(identity.roles),
            )
        caller = await self._appdata.get_caller(identity.org_id, identity.user_id)
        if caller is None:
            raise Forbidden("You are not a member of this organization.")
        return caller

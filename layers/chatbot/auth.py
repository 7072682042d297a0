"""Bearer-token verification: HS256 with a shared secret (development) or JWKS (production)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import jwt

from .errors import Unauthorized
from .settings import Settings

# Asymmetric algorithms only for JWKS: a JWKS public key must never be usable as an HMAC secret.
ASYMMETRIC_ALGORITHMS = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
]
MAX_TOKEN_BYTES = 8192
LEEWAY_SECONDS = 30


MAX_CLAIM_CHARS = 256
MAX_ROLES = 16


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the token says the caller is: the user, their active organization (the `AUTH_ORG_CLAIM` claim)
    and, when `AUTH_ROLE_CLAIM` is set, the roles the token gives them there (empty when it names none)."""

    user_id: str
    org_id: str
    roles: tuple[str, ...] = ()
    name: str = ""
    email: str = ""


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or `Unauthorized`."""
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <token>'.")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("The Authorization header must be 'Bearer <token>'.")
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("The token is too large.")
    return token


class TokenVerifier:
    """Checks signature, expiry, lifetime and (for JWKS) issuer and audience; returns the caller's
    `Identity`."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._secret = settings.auth_jwt_secret
        self._max_lifetime = settings.auth_max_token_lifetime_seconds
        self._org_claim = settings.auth_org_claim
        self._role_claim = settings.auth_role_claim
        # The key set is cached whole and refreshed after `AUTH_JWKS_CACHE_SECONDS`, so a key the issuer
        # withdraws stops being trusted then. (PyJWKClient's `cache_keys` would keep every key it ever
        # resolved, by kid, for the life of the process.)
        self._jwks = (
            jwt.PyJWKClient(
                settings.auth_jwks_url,
                cache_keys=False,
                cache_jwk_set=True,
                lifespan=settings.auth_jwks_cache_seconds,
                timeout=5,
            )
            if settings.auth_jwks_url
            else None
        )

    @property
    def configured(self) -> bool:
        """Whether any verification method is configured (without one, every token is refused)."""
        return self._jwks is not None or self._secret is not None

    async def verify(self, token: str) -> Identity:
        """Verify `token` and return its identity, or raise `Unauthorized`."""
        try:
            if self._jwks is not None:
                claims = await self._verify_jwks(token)
            elif self._secret is not None:
                claims = self._decode(token, self._secret.get_secret_value(), ["HS256"])
            else:
                raise Unauthorized("Token verification is not configured on this server.")
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("The token has expired; sign in again.") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthorized("The token's signing key is not known.") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"The token is not valid ({exc}).") from exc
        self._check_audience(claims)
        self._check_lifetime(claims)
        return self._identity(claims)

    async def _verify_jwks(self, token: str) -> dict[str, Any]:
        assert self._jwks is not None
        # PyJWKClient fetches over blocking urllib when its cache misses; keep that off the event loop.
        key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
        algorithm = key.algorithm_name
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm} is not allowed")
        return self._decode(token, key, [algorithm])

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        # The audience is checked by `_check_audience`: PyJWT knows only `aud`, not Cognito's `client_id`.
        options: dict[str, Any] = {"require": ["exp", "sub"], "verify_aud": False}
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            issuer=self._issuer,
            leeway=LEEWAY_SECONDS,
            options=options,  # type: ignore[arg-type]  # PyJWT's Options TypedDict
        )
        return claims

    def _check_audience(self, claims: dict[str, Any]) -> None:
        """`AUTH_AUDIENCE` against `aud`, or against `client_id` when the token has no `aud` (Cognito access
        tokens name their app client there)."""
        if self._audience is None:
            return
        if "aud" in claims:
            audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        else:
            audiences = [claims.get("client_id")]
        if self._audience not in audiences:
            raise Unauthorized("The token is not valid (it was issued for another audience).")

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """Refuse a token valid for longer than `AUTH_MAX_TOKEN_LIFETIME_SECONDS`, from its `iat` or, without
        one, from now."""
        expires = claims["exp"]
        issued = claims.get("iat")
        start = issued if isinstance(issued, (int, float)) else time.time()
        if expires - start > self._max_lifetime:
            raise Unauthorized(
                f"The token's lifetime exceeds the longest accepted ({self._max_lifetime} s); "
                "ask your identity provider for shorter-lived tokens."
            )

    def _identity(self, claims: dict[str, Any]) -> Identity:
        user_id, org_id = claims.get("sub"), claims.get(self._org_claim)
        if not isinstance(user_id, str) or not user_id or len(user_id) > MAX_CLAIM_CHARS:
            raise Unauthorized("The token has no valid 'sub' claim.")
        if not isinstance(org_id, str) or not org_id or len(org_id) > MAX_CLAIM_CHARS:
            raise Unauthorized(f"The token has no active organization ('{self._org_claim}' claim).")
        return Identity(
            user_id=user_id,
            org_id=org_id,
            roles=_roles(claims.get(self._role_claim)) if self._role_claim else (),
            name=_text(claims.get("name")),
            email=_text(claims.get("email")),
        )


def _roles(value: object) -> tuple[str, ...]:
    """The roles a role claim names: one string, several separated by commas (Better Auth stores a member's
    several roles so), or a list of strings (e.g. Cognito's `cognito:groups`). Anything else names none."""
    if isinstance(value, str):
        names = value.split(",")
    elif isinstance(value, list) and all(isinstance(name, str) for name in value):
        names = value
    else:
        return ()
    roles = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))
    if len(roles) > MAX_ROLES or any(len(role) > MAX_CLAIM_CHARS for role in roles):
        return ()
    return roles


def _text(value: object) -> str:
    """An optional display claim (`name`, `email`): kept when it is a string of sensible length."""
    return value if isinstance(value, str) and len(value) <= MAX_CLAIM_CHARS else ""

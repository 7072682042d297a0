"""Bearer-token verification: HS256 with a shared secret (development) or JWKS (production)."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the token says the caller is: the user and their active organization."""

    user_id: str
    org_id: str


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
    """Checks signature, expiry and (for JWKS) issuer and audience; returns the caller's `Identity`."""

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._secret = settings.auth_jwt_secret
        self._jwks = (
            jwt.PyJWKClient(settings.auth_jwks_url, cache_keys=True, lifespan=3600, timeout=5)
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
        return _identity(claims)

    async def _verify_jwks(self, token: str) -> dict[str, Any]:
        assert self._jwks is not None
        # PyJWKClient fetches over blocking urllib when its cache misses; keep that off the event loop.
        key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
        algorithm = key.algorithm_name
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {algorithm} is not allowed")
        return self._decode(token, key, [algorithm])

    def _decode(self, token: str, key: Any, algorithms: list[str]) -> dict[str, Any]:
        options: dict[str, Any] = {"require": ["exp", "sub"]}
        if self._audience is None:
            options["verify_aud"] = False
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=self._audience,
            issuer=self._issuer,
            leeway=LEEWAY_SECONDS,
            options=options,  # type: ignore[arg-type]  # PyJWT's Options TypedDict
        )
        return claims


def _identity(claims: dict[str, Any]) -> Identity:
    user_id, org_id = claims.get("sub"), claims.get("org_id")
    if not isinstance(user_id, str) or not user_id or len(user_id) > 256:
        raise Unauthorized("The token has no valid 'sub' claim.")
    if not isinstance(org_id, str) or not org_id or len(org_id) > 256:
        raise Unauthorized("The token has no active organization ('org_id' claim).")
    return Identity(user_id=user_id, org_id=org_id)

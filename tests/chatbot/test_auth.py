"""Token verification: what is accepted, and every way a token is refused with 401."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anyio
import jwt
import pytest
from chatbot.auth import Identity, TokenVerifier, bearer_token
from chatbot.errors import Unauthorized
from chatbot.settings import Settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.fakes.jwks import serve_jwks, serve_key_set

SECRET = "s3cret-for-tests-only-0123456789abcdef"


def hs256(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


def valid_claims(**overrides: Any) -> dict[str, Any]:
    return {"sub": "user_alice", "org_id": "org_acme", "exp": int(time.time()) + 600, **overrides}


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(Settings(auth_jwt_secret=SECRET))


async def test_valid_hs256_token_gives_user_and_organization(verifier: TokenVerifier) -> None:
    assert await verifier.verify(hs256(valid_claims())) == Identity("user_alice", "org_acme")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(hs256(valid_claims(exp=int(time.time()) - 120)), id="expired"),
        pytest.param(hs256(valid_claims(nbf=int(time.time()) + 600)), id="not-yet-valid"),
        pytest.param(hs256(valid_claims(), secret="another-secret-another-secret-00"), id="bad-signature"),
        pytest.param(hs256({"sub": "user_alice", "org_id": "org_acme"}), id="no-exp"),
        pytest.param(hs256(valid_claims(org_id=None)), id="no-org"),
        pytest.param(hs256(valid_claims(sub="")), id="empty-sub"),
        pytest.param(hs256(valid_claims(org_id=["org_acme"])), id="org-not-a-string"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param(jwt.encode(valid_claims(), None, algorithm="none"), id="alg-none"),
    ],
)
async def test_bad_tokens_are_unauthorized(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        await verifier.verify(token)


@pytest.mark.parametrize(
    "header", [None, "", "Bearer", "Bearer   ", "Basic abc", "Token abc", "Bearer " + "a" * 9000]
)
def test_malformed_authorization_headers_are_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc.def.ghi") == "abc.def.ghi"


async def test_without_any_verification_configured_every_token_is_refused() -> None:
    verifier = TokenVerifier(Settings())
    assert not verifier.configured
    with pytest.raises(Unauthorized):
        await verifier.verify(hs256(valid_claims()))


# --- JWKS (production) -------------------------------------------------------------------------------

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
ISSUER, AUDIENCE = "https://auth.example.test", "chatbot"


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    with serve_jwks(KEY.public_key(), "key-1") as url:
        yield url


@pytest.fixture
def jwks_verifier(jwks_url: str) -> TokenVerifier:
    return TokenVerifier(Settings(auth_jwks_url=jwks_url, auth_issuer=ISSUER, auth_audience=AUDIENCE))


def rs256(claims: dict[str, Any], key: Any = KEY, kid: str = "key-1") -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def jwks_claims(**overrides: Any) -> dict[str, Any]:
    return valid_claims(**{"iss": ISSUER, "aud": AUDIENCE, **overrides})


async def test_jwks_token_with_right_issuer_and_audience_is_accepted(jwks_verifier: TokenVerifier) -> None:
    assert await jwks_verifier.verify(rs256(jwks_claims())) == Identity("user_alice", "org_acme")


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(rs256(jwks_claims(iss="https://evil.test")), id="wrong-issuer"),
        pytest.param(rs256(jwks_claims(aud="someone-else")), id="wrong-audience"),
        pytest.param(rs256(valid_claims(iss=ISSUER)), id="no-audience"),
        pytest.param(rs256(jwks_claims(), kid="unknown-kid"), id="unknown-kid"),
        pytest.param(rs256(jwks_claims(), key=OTHER_KEY), id="signed-by-another-key"),
        pytest.param(rs256(jwks_claims(exp=int(time.time()) - 120)), id="expired"),
        pytest.param(
            jwt.encode(jwks_claims(), None, algorithm="none", headers={"kid": "key-1"}), id="alg-none"
        ),
    ],
)
async def test_bad_jwks_tokens_are_unauthorized(jwks_verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(Unauthorized):
        await jwks_verifier.verify(token)


async def test_hs256_signed_with_the_jwks_public_key_is_refused(jwks_verifier: TokenVerifier) -> None:
    """Algorithm confusion: the public key used as an HMAC secret must not verify."""
    header = {"alg": "HS256", "typ": "JWT", "kid": "key-1"}
    segments = [
        jwt.utils.base64url_encode(json.dumps(header).encode()),
        jwt.utils.base64url_encode(json.dumps(jwks_claims()).encode()),
    ]
    import hashlib
    import hmac

    signing_input = b".".join(segments)
    signature = hmac.new(PUBLIC_PEM, signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + jwt.utils.base64url_encode(signature)).decode()
    with pytest.raises(Unauthorized):
        await jwks_verifier.verify(forged)


# --- Token lifetime and key rotation (hardening review) ---------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(
            valid_claims(iat=int(time.time()), exp=int(time.time()) + 100 * 365 * 86400), id="a-century"
        ),
        pytest.param(valid_claims(exp=int(time.time()) + 86400 + 3600), id="no-iat-expiring-in-25-hours"),
        pytest.param(
            valid_claims(iat=int(time.time()) - 86400, exp=int(time.time()) + 600), id="25-hours-in-all"
        ),
    ],
)
async def test_a_token_valid_for_longer_than_the_longest_lifetime_is_refused(
    verifier: TokenVerifier, claims: dict[str, Any]
) -> None:
    with pytest.raises(Unauthorized, match="lifetime"):
        await verifier.verify(hs256(claims))


async def test_the_longest_token_lifetime_is_configurable() -> None:
    verifier = TokenVerifier(Settings(auth_jwt_secret=SECRET, auth_max_token_lifetime_seconds=3600))
    now = int(time.time())
    assert await verifier.verify(hs256(valid_claims(iat=now, exp=now + 3600)))
    with pytest.raises(Unauthorized, match="lifetime"):
        await verifier.verify(hs256(valid_claims(iat=now, exp=now + 3601 + 60)))


async def test_a_key_withdrawn_from_the_jwks_stops_being_trusted_at_the_next_refresh() -> None:
    with serve_key_set() as keys:
        keys.publish((KEY.public_key(), "key-1"))
        verifier = TokenVerifier(
            Settings(
                auth_jwks_url=keys.url,
                auth_issuer=ISSUER,
                auth_audience=AUDIENCE,
                auth_jwks_cache_seconds=0.2,
            )
        )
        token = rs256(jwks_claims())
        assert await verifier.verify(token) == Identity("user_alice", "org_acme")
        keys.publish((OTHER_KEY.public_key(), "key-2"))  # key-1 withdrawn (it leaked)
        # Bounded: within a few refresh intervals the withdrawn key must be refused.
        with anyio.fail_after(5):
            while True:
                try:
                    await verifier.verify(token)
                except Unauthorized:
                    break
                await anyio.sleep(0.05)
        assert await verifier.verify(rs256(jwks_claims(), key=OTHER_KEY, kid="key-2"))


async def test_the_key_set_is_cached_between_refreshes() -> None:
    with serve_key_set() as keys:
        keys.publish((KEY.public_key(), "key-1"))
        verifier = TokenVerifier(Settings(auth_jwks_url=keys.url, auth_issuer=ISSUER, auth_audience=AUDIENCE))
        for _ in range(5):
            await verifier.verify(rs256(jwks_claims()))
        assert keys.fetches == 1


async def test_without_aud_a_token_is_checked_by_its_client_id_as_cognito_access_tokens_carry_it(
    jwks_verifier: TokenVerifier,
) -> None:
    claims = {k: v for k, v in jwks_claims().items() if k != "aud"}
    assert await jwks_verifier.verify(rs256({**claims, "client_id": AUDIENCE}))
    with pytest.raises(Unauthorized):
        await jwks_verifier.verify(rs256({**claims, "client_id": "another-app"}))
    with pytest.raises(Unauthorized):
        await jwks_verifier.verify(rs256(claims))


async def test_the_organization_claim_is_the_one_auth_org_claim_names() -> None:
    verifier = TokenVerifier(Settings(auth_jwt_secret=SECRET, auth_org_claim="activeOrganizationId"))
    token = hs256(valid_claims(org_id=None, activeOrganizationId="org_ba"))
    assert await verifier.verify(token) == Identity("user_alice", "org_ba")
    # The default claim no longer counts, and the refusal names the configured one.
    with pytest.raises(Unauthorized, match="'activeOrganizationId' claim"):
        await verifier.verify(hs256(valid_claims()))


@pytest.mark.parametrize(
    ("value", "roles"),
    [
        pytest.param("admin", ("admin",), id="one"),
        pytest.param("admin, member", ("admin", "member"), id="comma-separated"),
        pytest.param(["editors", "admin"], ("editors", "admin"), id="list"),
        pytest.param(None, (), id="missing"),
        pytest.param(3, (), id="number"),
        pytest.param(["admin", 1], (), id="list-with-a-number"),
        pytest.param({"admin": True}, (), id="object"),
        pytest.param(" , ", (), id="blank"),
        pytest.param("x" * 300, (), id="too-long"),
    ],
)
async def test_the_role_claim_is_read_as_one_or_several_roles_or_none(
    value: Any, roles: tuple[str, ...]
) -> None:
    verifier = TokenVerifier(Settings(auth_jwt_secret=SECRET, auth_role_claim="org_role"))
    identity = await verifier.verify(hs256(valid_claims(org_role=value)))
    assert identity.roles == roles


async def test_without_auth_role_claim_no_role_is_read_from_the_token(verifier: TokenVerifier) -> None:
    identity = await verifier.verify(hs256(valid_claims(role="owner", org_role="owner")))
    assert identity.roles == ()


async def test_the_token_name_and_email_are_carried_when_they_are_strings(verifier: TokenVerifier) -> None:
    identity = await verifier.verify(hs256(valid_claims(name="Alice Anders", email="alice@acme.test")))
    assert (identity.name, identity.email) == ("Alice Anders", "alice@acme.test")
    assert (await verifier.verify(hs256(valid_claims(name=["x"], email=7)))).name == ""

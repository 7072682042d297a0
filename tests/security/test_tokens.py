"""Hostile bearer tokens against the HTTP API (the verifier's unit tests are in tests/chatbot/test_auth.py):
each is a 401 `unauthorized` on every authenticated route, never a 500, with a production-style JWKS."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.conftest import LiveServer, ServerFactory
from tests.fakes.jwks import serve_jwks

ISSUER, AUDIENCE, KID = "https://auth.example.test", "chatbot", "key-1"
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = PRIVATE.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "sub": "user_alice",
        "org_id": "org_acme",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 600,
        **overrides,
    }


def rs256(payload: dict[str, Any], key: Any = PRIVATE, kid: str = KID) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    import hashlib
    import hmac

    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{b64(payload)}"
    signature = hmac.new(PUBLIC_PEM, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


HOSTILE = {
    "alg none": lambda: f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': KID})}.{b64(claims())}.",
    "HS256 signed with the JWKS public key": lambda: hs256_with_public_key(claims()),
    "expired": lambda: rs256(claims(exp=int(time.time()) - 3600)),
    "not yet valid": lambda: rs256(claims(nbf=int(time.time()) + 3600)),
    "wrong issuer": lambda: rs256(claims(iss="https://evil.example.test")),
    "wrong audience": lambda: rs256(claims(aud="another-app")),
    "unknown kid": lambda: rs256(claims(), kid="key-unknown"),
    "signed by another key": lambda: rs256(claims(), key=OTHER),
    "no org_id": lambda: rs256({k: v for k, v in claims().items() if k != "org_id"}),
    "oversized": lambda: rs256(claims(padding="x" * 10_000)),
    "garbage": lambda: "not.a.jwt",
    "binary garbage": lambda: "\u00ff\u00fe%%%.$$$.@@@",
    "empty segments": lambda: "..",
}
ROUTES = [("POST", "/api/chatbot/message"), ("POST", "/api/chatbot/cancel"), ("GET", "/api/chatbot/usage")]


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    with serve_jwks(PRIVATE.public_key(), KID) as url:
        yield url


@pytest.fixture
def jwks_server(start_server: ServerFactory, jwks_url: str) -> LiveServer:
    return start_server(
        auth_jwt_secret=None, auth_jwks_url=jwks_url, auth_issuer=ISSUER, auth_audience=AUDIENCE
    )


async def test_a_valid_jwks_token_is_accepted(jwks_server: LiveServer) -> None:
    stream = await jwks_server.message(token=rs256(claims()))
    assert stream.status == 200 and stream.last["type"] == "done"


@pytest.mark.parametrize("kind", list(HOSTILE))
async def test_a_hostile_token_is_401_on_every_authenticated_route(
    jwks_server: LiveServer, kind: str
) -> None:
    token = HOSTILE[kind]()
    async with jwks_server.client() as client:
        for method, path in ROUTES:
            response = await client.request(
                method,
                path,
                json={"message": "hi"},
                headers={"authorization": f"Bearer {token}".encode("latin-1")},
            )
            assert response.status_code == 401, (kind, path, response.text)
            assert response.json()["error"] == "unauthorized"

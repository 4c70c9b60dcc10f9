"""Bearer tokens: who may read which organization."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.query_api.auth import Unauthorized, sign, verify
from services.query_api.settings import ApiSettings

SECRET = "unit-test-secret-long-enough-for-hs256"
HS256 = ApiSettings(jwt_secret=SECRET)


def test_a_token_reads_its_own_organization_only() -> None:
    caller = verify(f"Bearer {sign('org-1', SECRET)}", HS256)

    assert caller.may_read("org-1")
    assert not caller.may_read("org-2")


def test_the_operator_scope_reads_every_organization() -> None:
    caller = verify(f"Bearer {sign(None, SECRET, operator=True)}", HS256)

    assert caller.may_read("org-1")
    assert caller.may_read("org-anything")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        f"Bearer {sign('org-1', 'another-secret-that-is-also-long-enough')}",
        f"Bearer {sign('org-1', SECRET, ttl_s=-60)}",
        f"Bearer {jwt.encode({'org': 'org-1'}, SECRET, algorithm='HS256')}",  # no expiry
    ],
)
def test_missing_foreign_expired_or_malformed_tokens_are_unauthorized(header: str | None) -> None:
    with pytest.raises(Unauthorized):
        verify(header, HS256)


def test_rs256_tokens_verify_with_the_public_key_and_refuse_hs256() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = ApiSettings(jwt_public_key=public_pem)
    token = jwt.encode({"org": "org-7", "exp": int(time.time()) + 60}, private, algorithm="RS256")

    assert verify(f"Bearer {token}", settings).may_read("org-7")
    with pytest.raises(Unauthorized):
        verify(f"Bearer {sign('org-7', SECRET)}", settings)


def test_an_api_without_a_key_refuses_every_token() -> None:
    with pytest.raises(Unauthorized):
        verify(f"Bearer {sign('org-1', SECRET)}", ApiSettings(jwt_secret=None, jwt_public_key=None))

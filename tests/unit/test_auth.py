"""Bearer tokens: who may read which organization, and every token that is refused.

RS256 keys come from a JWKS served by the test on a local port (tests/support/jwks.py).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from pydantic import ValidationError

from services.query_api import auth
from services.query_api.auth import Caller, KeysUnavailable, TokenVerifier, Unauthorized, sign
from services.query_api.settings import ApiSettings
from tests.support.jwks import AUDIENCE, ISSUER, SigningKey, identity_provider

SECRET = "unit-test-secret-long-enough-for-hs256"
HS256 = TokenVerifier(ApiSettings(jwt_secret=SECRET))
KEY = SigningKey("key-1")


def rs256(url: str, **settings: Any) -> TokenVerifier:
    return TokenVerifier(
        ApiSettings(
            jwt_jwks_url=url,
            jwt_audience=AUDIENCE,
            jwt_issuer=ISSUER,
            **{"jwt_jwks_refresh_cooldown_s": 0, **settings},
        )
    )


def test_a_token_reads_its_own_organization_only() -> None:
    caller = HS256.verify(f"Bearer {sign('org-1', SECRET)}")

    assert caller.may_read("org-1")
    assert not caller.may_read("org-2")


def test_the_operator_scope_reads_every_organization() -> None:
    caller = HS256.verify(f"Bearer {sign(None, SECRET, operator=True)}")

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
        HS256.verify(header)


def test_rs256_needs_an_audience_and_an_issuer() -> None:
    cases: list[dict[str, Any]] = [{"jwt_audience": AUDIENCE}, {"jwt_issuer": ISSUER}, {}]
    for missing in cases:
        with pytest.raises(ValidationError, match="AUDIENCE and METERING_API_JWT_ISSUER"):
            ApiSettings(jwt_jwks_url="http://127.0.0.1:1/jwks", **missing)
        with pytest.raises(ValidationError, match="AUDIENCE and METERING_API_JWT_ISSUER"):
            ApiSettings(jwt_public_key=KEY.public_pem, **missing)


def test_clock_skew_allowed_is_bounded() -> None:
    with pytest.raises(ValidationError):
        ApiSettings(jwt_secret=SECRET, jwt_leeway_s=3600)


def test_a_valid_rs256_token_from_the_jwks_reads_its_organization() -> None:
    with identity_provider(KEY) as idp:
        caller = rs256(idp.url).verify(f"Bearer {KEY.token()}")
    assert caller == Caller("org-a", operator=False, subject="user-1")


def test_the_organization_claim_and_the_scp_list_are_read_as_configured() -> None:
    token = KEY.token({"org": None, "tenant": "org-t", "scp": ["read", "metering:operator"]})
    with identity_provider(KEY) as idp:
        caller = rs256(idp.url, jwt_organization_claim="tenant").verify(f"Bearer {token}")
    assert caller.organization_id == "org-t"
    assert caller.operator


def _alg_none() -> str:
    claims = {"org": "org-a", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60}
    return jwt.encode(claims, None, algorithm="none", headers={"kid": KEY.kid})  # type: ignore[arg-type]


def _key_confusion() -> str:
    """HS256 signed with the RSA public key as the secret, naming the JWKS key."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": KEY.kid}).encode())
    claims = {"org": "org-a", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 60}
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(KEY.public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256)
    return f"{header}.{body}.{b64(mac.digest())}"


REFUSED = {
    "wrong audience": lambda: KEY.token({"aud": "billing-ui"}),
    "no audience": lambda: KEY.token({"aud": None}),
    "wrong issuer": lambda: KEY.token({"iss": "https://elsewhere.example"}),
    "no issuer": lambda: KEY.token({"iss": None}),
    "unknown kid": lambda: SigningKey("key-unknown").token(),
    "another key under a known kid": lambda: SigningKey(KEY.kid).token(),
    "expired beyond the skew": lambda: KEY.token({"exp": int(time.time()) - 120}),
    "not yet valid beyond the skew": lambda: KEY.token({"nbf": int(time.time()) + 120}),
    "no expiry": lambda: KEY.token({"exp": None}),
    "alg none": _alg_none,
    "key confusion (HS256 with the public key)": _key_confusion,
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_rs256_refuses(case: str) -> None:
    with identity_provider(KEY) as idp, pytest.raises(Unauthorized):
        rs256(idp.url).verify(f"Bearer {REFUSED[case]()}")


def test_within_the_skew_an_expired_or_early_token_still_reads() -> None:
    with identity_provider(KEY) as idp:
        verifier = rs256(idp.url, jwt_leeway_s=60)
        verifier.verify(f"Bearer {KEY.token({'exp': int(time.time()) - 20})}")
        verifier.verify(f"Bearer {KEY.token({'nbf': int(time.time()) + 20})}")


def test_keys_are_cached_and_fetched_again_for_an_unknown_kid() -> None:
    rotated = SigningKey("key-2")
    with identity_provider(KEY) as idp:
        verifier = rs256(idp.url)
        for _ in range(5):
            verifier.verify(f"Bearer {KEY.token()}")
        assert idp.fetches == 1
        idp.keys.append(rotated)  # the provider rotates in a new key
        assert verifier.verify(f"Bearer {rotated.token()}").organization_id == "org-a"
        assert idp.fetches == 2


def test_an_unknown_kid_fetches_again_at_most_once_per_cooldown() -> None:
    with identity_provider(KEY) as idp:
        verifier = rs256(idp.url, jwt_jwks_refresh_cooldown_s=3600)
        verifier.verify(f"Bearer {KEY.token()}")
        for n in range(20):
            with pytest.raises(Unauthorized):
                verifier.verify(f"Bearer {SigningKey(f'random-{n}').token()}")
        assert idp.fetches == 1


def test_an_unreachable_identity_provider_is_a_503_not_a_401() -> None:
    with identity_provider(KEY) as idp:
        url = idp.url
    with pytest.raises(KeysUnavailable):
        rs256(url, jwt_jwks_timeout_s=1).verify(f"Bearer {KEY.token()}")


def test_a_single_public_key_works_without_a_jwks() -> None:
    verifier = TokenVerifier(
        ApiSettings(jwt_public_key=KEY.public_pem, jwt_audience=AUDIENCE, jwt_issuer=ISSUER)
    )
    assert verifier.verify(f"Bearer {KEY.token()}").may_read("org-a")
    with pytest.raises(Unauthorized):
        verifier.verify(f"Bearer {sign('org-a', SECRET)}")


def test_an_api_without_a_key_refuses_every_token() -> None:
    verifier = TokenVerifier(ApiSettings(jwt_secret=None, jwt_public_key=None))
    with pytest.raises(Unauthorized):
        verifier.verify(f"Bearer {sign('org-1', SECRET)}")


def test_a_verified_token_is_not_checked_again_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(ApiSettings(jwt_secret=SECRET, jwt_leeway_s=5))
    now = time.time()
    long_lived, short_lived = sign("org-1", SECRET, ttl_s=3600), sign("org-2", SECRET, ttl_s=10)
    checked: list[str] = []
    decode = verifier._decode

    def counted(token: str) -> dict[str, Any]:
        checked.append(token)
        return decode(token)

    monkeypatch.setattr(verifier, "_decode", counted)
    clock = [now]
    monkeypatch.setattr(verifier, "clock", lambda: clock[0])

    for at in (now, now + 30, now + auth.CACHE_S + 1):
        clock[0] = at
        assert verifier.verify(f"Bearer {long_lived}").may_read("org-1")
    assert checked == [long_lived] * 2, "checked again only after CACHE_S (a withdrawn key)"
    for at in (now, now + 14, now + 16):
        clock[0] = at
        assert verifier.verify(f"Bearer {short_lived}").may_read("org-2")
    assert checked[2:] == [short_lived] * 2, "past exp + leeway the cache does not answer"


def test_a_refused_token_is_refused_every_time() -> None:
    verifier = TokenVerifier(ApiSettings(jwt_secret=SECRET))
    forged = sign("org-1", "another-secret-long-enough-for-hs256-signing")
    for _ in range(2):
        with pytest.raises(Unauthorized):
            verifier.verify(f"Bearer {forged}")
    assert not verifier.verified

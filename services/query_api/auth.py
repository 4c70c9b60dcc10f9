"""Bearer JWT authentication: the token names the organization it may read.

Two modes, chosen by the settings:

- **RS256** (production): keys from the identity provider's JWKS URL (fetched
  with a timeout, cached, fetched again when a token names an unknown `kid`, at
  most once per cooldown) or one PEM public key. The audience and issuer are
  mandatory settings and every token must carry both, matching.
- **HS256** (local use): a shared secret; `metering token` signs with it.

Either way a token must carry `exp`; `nbf` and `iat` are honoured; the clock
skew allowed is bounded. Only the mode's own algorithm is accepted, so
`alg: none` and HS256 signed with the public key (key confusion) are refused.
The organization comes from a configurable claim (`org` by default); the
operator scope (in `scope`, space-separated, or `scp`, a list) may read every
organization.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt

from services.query_api.settings import ApiSettings

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    """No token, or one that does not verify (HTTP 401)."""


class Forbidden(Exception):
    """A valid token for another organization (HTTP 403)."""


class KeysUnavailable(Exception):
    """The identity provider's keys cannot be fetched now (HTTP 503): not the caller's fault."""


@dataclass(frozen=True)
class Caller:
    organization_id: str | None
    operator: bool
    subject: str | None = None

    def may_read(self, organization_id: str) -> bool:
        return self.operator or self.organization_id == organization_id


CACHED_TOKENS = 10_000
"""How many verified tokens a verifier remembers (the least recently used go first)."""
CACHE_S = 60.0
"""The longest a verified token is trusted without checking it again, so a key the
identity provider withdraws stops being honoured within a minute."""


class TokenVerifier:
    """Verifies bearer tokens as the settings say; one per app (it caches the JWKS).

    A token that verified is remembered (its caller and until when) so the next
    request with it costs a dictionary lookup, not a signature check: until its
    `exp` (plus the leeway decode allows) and at most CACHE_S. Refused tokens are
    not remembered: each is checked again, and refused with its reason.
    """

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.verified: OrderedDict[str, tuple[Caller, float]] = OrderedDict()
        self.clock = time.time
        self.jwks: jwt.PyJWKClient | None = None
        self.key: str | None = None
        if settings.jwt_jwks_url:
            self.mode = "RS256"
            self.jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url,
                lifespan=settings.jwt_jwks_cache_s,
                timeout=settings.jwt_jwks_timeout_s,
                cooldown_duration=settings.jwt_jwks_refresh_cooldown_s,
            )
        elif settings.jwt_public_key:
            self.mode, self.key = "RS256", settings.jwt_public_key
        elif settings.jwt_secret:
            self.mode, self.key = "HS256", settings.jwt_secret
        else:
            self.mode = "none"

    def describe(self) -> str:
        """What the start-up log line says about tokens."""
        if self.mode == "HS256":
            return (
                "tokens: HS256 with a shared secret (METERING_API_JWT_SECRET), for local use"
                " only; in production use RS256 with METERING_API_JWT_JWKS_URL"
            )
        if self.mode == "RS256":
            source = self.settings.jwt_jwks_url or "a PEM public key"
            return (
                f"tokens: RS256 from {source}, audience {self.settings.jwt_audience!r},"
                f" issuer {self.settings.jwt_issuer!r}"
            )
        return "tokens: no key configured; every /v1 request is refused (401)"

    def verify(self, authorization: str | None) -> Caller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise Unauthorized("a bearer token is required")
        token = authorization[len("bearer ") :].strip()
        if self.mode == "none":
            raise Unauthorized("the API has no key to verify tokens with (METERING_API_JWT_*)")
        now = self.clock()
        known = self.verified.get(token)
        if known is not None and now < known[1]:
            self.verified.move_to_end(token)
            return known[0]
        claims = self._decode(token)
        organization = claims.get(self.settings.jwt_organization_claim)
        subject = claims.get("sub")
        caller = Caller(
            organization_id=organization if isinstance(organization, str) else None,
            operator=self.settings.operator_scope in _scopes(claims),
            subject=subject if isinstance(subject, str) else None,
        )
        self._remember(token, caller, claims, now)
        return caller

    def _remember(self, token: str, caller: Caller, claims: dict[str, Any], now: float) -> None:
        """Trust `token` again until it expires (as decode counts), at most CACHE_S."""
        expires = claims.get("exp")
        if not isinstance(expires, int | float):
            return
        self.verified[token] = (caller, min(expires + self.settings.jwt_leeway_s, now + CACHE_S))
        self.verified.move_to_end(token)
        while len(self.verified) > CACHED_TOKENS:
            self.verified.popitem(last=False)

    def _decode(self, token: str) -> dict[str, Any]:
        settings = self.settings
        strict = self.mode == "RS256"
        required = ["exp", "iss", "aud"] if strict else ["exp"]
        try:
            key: Any = self.key
            if self.jwks is not None:
                key = self.jwks.get_signing_key_from_jwt(token).key
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.mode],
                audience=settings.jwt_audience,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={
                    "require": required,
                    "verify_aud": settings.jwt_audience is not None,
                    "verify_iss": settings.jwt_issuer is not None,
                },
            )
        except jwt.PyJWKClientConnectionError as error:
            detail = f"the identity provider's keys are out of reach: {error}"
            raise KeysUnavailable(detail) from None
        except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
            raise Unauthorized(f"invalid token: {error}") from None
        return claims


def _scopes(claims: dict[str, Any]) -> set[str]:
    scopes = set(str(claims.get("scope", "")).split())
    listed = claims.get("scp")
    if isinstance(listed, list):
        scopes |= {s for s in listed if isinstance(s, str)}
    elif isinstance(listed, str):
        scopes |= set(listed.split())
    return scopes


def sign(
    organization_id: str | None,
    secret: str,
    *,
    operator: bool = False,
    ttl_s: int = 86400,
    claim: str = "org",
) -> str:
    """A development token (HS256) for `metering token` and the tests."""
    claims: dict[str, object] = {"exp": int(time.time()) + ttl_s}
    if organization_id is not None:
        claims[claim] = organization_id
    if operator:
        claims["scope"] = ApiSettings.model_fields["operator_scope"].default
    return jwt.encode(claims, secret, algorithm="HS256")

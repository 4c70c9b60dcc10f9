"""Bearer JWT authentication: the token names the organization it may read.

Claims: `org` (the organization id) and optionally `scope` (space-separated);
the operator scope may read every organization. HS256 with a shared secret or
RS256 with a public key, as configured.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt

from services.query_api.settings import ApiSettings


class Unauthorized(Exception):
    """No token, or one that does not verify (HTTP 401)."""


class Forbidden(Exception):
    """A valid token for another organization (HTTP 403)."""


@dataclass(frozen=True)
class Caller:
    organization_id: str | None
    operator: bool

    def may_read(self, organization_id: str) -> bool:
        return self.operator or self.organization_id == organization_id


def verify(authorization: str | None, settings: ApiSettings) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("a bearer token is required")
    token = authorization[len("bearer ") :].strip()
    if settings.jwt_public_key:
        key, algorithms = settings.jwt_public_key, ["RS256"]
    elif settings.jwt_secret:
        key, algorithms = settings.jwt_secret, ["HS256"]
    else:
        raise Unauthorized("the API has no key to verify tokens with (METERING_API_JWT_SECRET)")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            options={"require": ["exp"], "verify_aud": settings.jwt_audience is not None},
        )
    except jwt.PyJWTError as error:
        raise Unauthorized(f"invalid token: {error}") from None
    scopes = str(claims.get("scope", "")).split()
    organization = claims.get("org")
    return Caller(
        organization_id=organization if isinstance(organization, str) else None,
        operator=settings.operator_scope in scopes,
    )


def sign(
    organization_id: str | None, secret: str, *, operator: bool = False, ttl_s: int = 86400
) -> str:
    """A development token (HS256) for `metering token` and the tests."""
    import time

    claims: dict[str, object] = {"exp": int(time.time()) + ttl_s}
    if organization_id is not None:
        claims["org"] = organization_id
    if operator:
        claims["scope"] = ApiSettings().operator_scope
    return jwt.encode(claims, secret, algorithm="HS256")

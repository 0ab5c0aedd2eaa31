"""Short-lived signed access tokens (HS256 JWT), one audience per kind of caller.

Lifetimes run on real time, not the test clock (docs/api.md "Test clock").
"""

from __future__ import annotations

import time
from typing import Any

import jwt

ISSUER = "yuyue"


def issue(secret: str, kind: str, subject: str, ttl_s: int, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": kind, "sub": subject, "iat": now, "exp": now + ttl_s, **claims}
    return jwt.encode(payload, secret, algorithm="HS256")


# Tokens already verified, with their claims (decision 0013): a citizen's token comes with every
# request, and the rate limit reads it before the route does. Only the expiry depends on the time,
# so a hit checks it again; anything that failed is never kept.
_verified: dict[tuple[str, str, str], dict[str, Any]] = {}
_VERIFIED_MAX = 20_000


def verify(secret: str, kind: str, token: str) -> dict[str, Any] | None:
    key = (secret, kind, token)
    hit = _verified.get(key)
    if hit is not None:
        if time.time() < hit["exp"]:  # as PyJWT: expired once exp <= now
            return dict(hit)
        _verified.pop(key, None)
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=kind,
            issuer=ISSUER,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError:
        return None
    if isinstance(claims.get("exp"), int | float):
        if len(_verified) >= _VERIFIED_MAX:
            _verified.clear()
        _verified[key] = dict(claims)
    return claims

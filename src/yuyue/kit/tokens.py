"""Short-lived signed access tokens (HS256 JWT), one audience per kind of caller.

Lifetimes run on real time, not the test clock (API.md "Test clock").
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


def verify(secret: str, kind: str, token: str) -> dict[str, Any] | None:
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
    return claims

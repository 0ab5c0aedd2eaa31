"""The HMAC signature of a partner request, and of the platform's webhooks to partners (decision 0063):
hex HMAC-SHA256, with the key's secret, of METHOD \\n PATH \\n QUERY \\n TIMESTAMP \\n NONCE \\n
hex(SHA-256(body)), followed by \\n hex(SHA-256(Authorization header)) when the request carries one
(a citizen token: decision 0094, so a token cannot be put on or swapped into a signed request). The
same function both ways, so a partner verifies our webhooks as we verify them."""

from __future__ import annotations

import hashlib
import hmac


def canonical(
    method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes, authorization: str = ""
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    lines = f"{method.upper()}\n{path}\n{query}\n{timestamp}\n{nonce}\n{digest}"
    if authorization:  # decision 0094: the citizen token is signed with the request
        lines += "\n" + hashlib.sha256(authorization.encode()).hexdigest()
    return lines.encode()


def sign(
    key_secret: str,
    method: str,
    path: str,
    query: str,
    timestamp: str,
    nonce: str,
    body: bytes,
    authorization: str = "",
) -> str:
    """The signature a partner sends (also used by the tests and the partner SDK example);
    `authorization` is the request's whole `Authorization` header value, when it has one."""
    message = canonical(method, path, query, timestamp, nonce, body, authorization)
    return hmac.new(key_secret.encode(), message, hashlib.sha256).hexdigest()

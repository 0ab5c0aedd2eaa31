"""The HMAC signature of a partner request, and of the platform's webhooks to partners (decision 0063):
hex HMAC-SHA256, with the key's secret, of METHOD \\n PATH \\n QUERY \\n TIMESTAMP \\n NONCE \\n
hex(SHA-256(body)). The same function both ways, so a partner verifies our webhooks as we verify them."""

from __future__ import annotations

import hashlib
import hmac


def canonical(method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{path}\n{query}\n{timestamp}\n{nonce}\n{digest}".encode()


def sign(key_secret: str, method: str, path: str, query: str, timestamp: str, nonce: str, body: bytes) -> str:
    """The signature a partner sends (also used by the tests and the partner SDK example)."""
    message = canonical(method, path, query, timestamp, nonce, body)
    return hmac.new(key_secret.encode(), message, hashlib.sha256).hexdigest()

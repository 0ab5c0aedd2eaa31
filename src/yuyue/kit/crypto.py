"""Personal data at rest: a keyed hash for lookups and authenticated encryption for display.

Keys are derived from YUYUE_SECRET_KEY with HKDF, one per purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yuyue", info=purpose).derive(secret.encode())


@lru_cache(maxsize=4)
def _keys(secret: str) -> tuple[bytes, Fernet]:
    return _derive(secret, b"lookup"), Fernet(base64.urlsafe_b64encode(_derive(secret, b"encrypt")))


def lookup_hash(secret: str, value: str) -> str:
    return hmac.new(_keys(secret)[0], value.encode(), hashlib.sha256).hexdigest()


def encrypt(secret: str, value: str) -> str:
    return _keys(secret)[1].encrypt(value.encode()).decode()


def decrypt(secret: str, token: str) -> str:
    return _keys(secret)[1].decrypt(token.encode()).decode()

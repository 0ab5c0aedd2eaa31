"""Personal data at rest: a keyed hash for lookups and authenticated encryption for display.

Keys are derived from secrets with HKDF, one per purpose. The lookup key always comes from
YUYUE_SECRET_KEY (a hash must stay stable for lookups to work). Encryption keys rotate
(decision 0062): `configure(data_keys)` installs extra keys, newest first; the newest encrypts,
every key (and the one derived from YUYUE_SECRET_KEY, last) decrypts, and `rotate` re-encrypts a
value under the newest key (the re-encryption job of identity/service.py uses it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_data_keys: tuple[str, ...] = ()


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"yuyue", info=purpose).derive(secret.encode())


def configure(data_keys: list[str] | tuple[str, ...]) -> None:
    """Install the rotating encryption keys of this process, newest first (YUYUE_DATA_KEYS)."""
    global _data_keys
    _data_keys = tuple(data_keys)


@lru_cache(maxsize=8)
def _fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_derive(secret, b"encrypt")))


@lru_cache(maxsize=4)
def _lookup_key(secret: str) -> bytes:
    return _derive(secret, b"lookup")


@lru_cache(maxsize=8)
def _keyring(secret: str, data_keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(key) for key in (*data_keys, secret)])


def lookup_hash(secret: str, value: str) -> str:
    return hmac.new(_lookup_key(secret), value.encode(), hashlib.sha256).hexdigest()


def encrypt(secret: str, value: str) -> str:
    return _keyring(secret, _data_keys).encrypt(value.encode()).decode()


def decrypt(secret: str, token: str) -> str:
    return _keyring(secret, _data_keys).decrypt(token.encode()).decode()


def is_current(secret: str, token: str) -> bool:
    """Whether `token` is encrypted under the newest key (nothing to rotate)."""
    newest = _fernet(_data_keys[0] if _data_keys else secret)
    try:
        newest.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(secret: str, token: str) -> str:
    """The same value, encrypted under the newest key."""
    return _keyring(secret, _data_keys).rotate(token.encode()).decode()

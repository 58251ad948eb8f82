"""The keys that protect what is kept: the audit log's HMAC key and the Fernet keys for data at
rest (staff TOTP secrets) and for the fallback's copy in the log.

Both come from settings, that is from the environment, never from the database: someone who can
read or write the database (a leaked backup, the app's own database user) can neither forge an
audit entry nor read a TOTP secret. When AUDIT_KEY or DATA_KEYS is not set, each is derived from
SECRET_KEY with its own label, so a quick start needs one secret only. DATA_KEYS may list several
keys, newest first (cryptography's MultiFernet): the first encrypts, all decrypt, so a key can be
rotated without losing what the older one sealed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ivr.settings import settings

__all__ = ["InvalidToken", "audit_key", "data_keys", "decrypt", "encrypt"]


def _derived(label: bytes) -> bytes:
    secret = str(settings().secret_key).encode()
    return hmac.new(secret, label, hashlib.sha256).digest()


def derive(label: str, data: str) -> bytes:
    """A value only the app can compute from `data` (HMAC with a key derived from SECRET_KEY)."""
    key = _derived(b"ivr derive " + label.encode())
    return hmac.new(key, data.encode(), hashlib.sha256).digest()


def audit_key() -> bytes:
    key = settings().audit_key or ""
    return key.encode() if key else _derived(b"ivr audit log chain")


def data_keys() -> MultiFernet:
    keys = list(settings().data_keys or [])
    if not keys:
        keys = [base64.urlsafe_b64encode(_derived(b"ivr data at rest")).decode()]
    return MultiFernet([Fernet(key.encode()) for key in keys])


def encrypt(text: str) -> str:
    return data_keys().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """Raises InvalidToken when no key opens it (a key removed too early, or not ours)."""
    return data_keys().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt with the newest key (a no-op for a token the newest key sealed already)."""
    return data_keys().rotate(token.encode()).decode()

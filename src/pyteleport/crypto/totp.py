"""TOTP (RFC 6238) with SHA-1, 6 digits and 30-second steps, as authenticator apps expect."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import struct
from urllib.parse import quote

STEP_S = 30
DIGITS = 6


def generate_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode().rstrip("=")


def _decode(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def code_at(secret: str, when: dt.datetime) -> str:
    """RFC 4226 HOTP over the RFC 6238 time step containing ``when``."""
    counter = int(when.timestamp()) // STEP_S
    digest = hmac.new(_decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def verify_code(secret: str, code: str, when: dt.datetime, skew_steps: int = 1) -> bool:
    """Accept the current step and ``skew_steps`` either side, for clock drift."""
    code = code.strip()
    if len(code) != DIGITS or not code.isdigit():
        return False
    return any(
        hmac.compare_digest(code_at(secret, when + dt.timedelta(seconds=STEP_S * k)), code)
        for k in range(-skew_steps, skew_steps + 1)
    )


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    label = quote(f"{issuer}:{account}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}&algorithm=SHA1&digits=6&period=30"

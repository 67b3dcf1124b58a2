"""TOTP against the RFC 6238 test vectors (SHA-1 key "12345678901234567890")."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from pyteleport.crypto import totp

SECRET = base64.b32encode(b"12345678901234567890").decode().rstrip("=")


@pytest.mark.parametrize(
    "unix,code",
    [(59, "287082"), (1111111109, "081804"), (1234567890, "005924"), (2000000000, "279037")],
)
def test_rfc6238_vectors(unix: int, code: str) -> None:
    assert totp.code_at(SECRET, dt.datetime.fromtimestamp(unix, dt.UTC)) == code


def test_verify_accepts_one_step_of_drift_only() -> None:
    now = dt.datetime.fromtimestamp(1234567890, dt.UTC)
    code = totp.code_at(SECRET, now)
    assert totp.verify_code(SECRET, code, now + dt.timedelta(seconds=30))
    assert not totp.verify_code(SECRET, code, now + dt.timedelta(seconds=120))
    assert not totp.verify_code(SECRET, "12345", now)

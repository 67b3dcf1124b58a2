"""Password hashes (argon2id) and the minimum a password must meet."""

from __future__ import annotations

import argon2

from pyteleport.errors import BadParameterError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128

_hasher = argon2.PasswordHasher()


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadParameterError(
            f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise BadParameterError(f"password is too long: at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    return str(_hasher.hash(password))


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(password_hash, password))
    except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError):
        return False
    except argon2.exceptions.VerificationError:
        return False


# A hash to verify against when the user does not exist, so timing does not reveal which names exist.
DUMMY_HASH = hash_password("not-a-real-password-used-for-timing")

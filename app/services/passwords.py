"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.errors import ValidationError

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# A real hash to verify against when the username is unknown, so timing does not tell.
_DUMMY_HASH = _hasher.hash("not-a-real-password-0000")


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", field="password"
        )
    if password.strip() != password:
        raise ValidationError("The password must not start or end with spaces.", field="password")

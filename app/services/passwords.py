"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.errors import ValidationError

MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# Real hashes to verify against when there is no hash to check (an unknown username, a single
# sign-on account), one per set of hasher parameters, so the check costs what a real one does
# and timing does not tell.
_dummy_hashes: dict[tuple, str] = {}


def _dummy_hash() -> str:
    params = (_hasher.time_cost, _hasher.memory_cost, _hasher.parallelism, _hasher.hash_len, _hasher.salt_len,
              _hasher.type)
    if params not in _dummy_hashes:
        _dummy_hashes[params] = _hasher.hash("not-a-real-password-0000")
    return _dummy_hashes[params]


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
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

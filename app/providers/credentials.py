"""A clinic's own provider credentials: which fields each provider needs, and Fernet sealing.

The key is ``CREDENTIALS_KEY`` (a Fernet key from the environment). Without it nothing can be
stored, and a clinic's route uses the credentials from the environment (``TWILIO_*``,
``UNIFONIC_APP_SID``). Stored values are never returned to a page: only "set" and when.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from app.errors import ConfigurationError, ValidationError


@dataclass(frozen=True)
class CredentialField:
    name: str
    label: str


CREDENTIAL_FIELDS: dict[str, tuple[CredentialField, ...]] = {
    "twilio": (CredentialField("account_sid", "Account SID"), CredentialField("auth_token", "Auth token")),
    "unifonic": (CredentialField("app_sid", "AppSid"),),
}


def _fernet(key: SecretStr | None) -> Fernet:
    if key is None or not key.get_secret_value():
        raise ConfigurationError(
            "Credentials cannot be stored: CREDENTIALS_KEY is not set. Ask the operator to set it (a Fernet key), "
            "or leave the credentials in the environment variables.")
    try:
        return Fernet(key.get_secret_value().encode())
    except ValueError:
        raise ConfigurationError("CREDENTIALS_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes).") \
            from None


def check_credentials(provider: str, values: dict[str, str]) -> dict[str, str]:
    """Every field of ``provider`` filled in (trimmed), or a ValidationError naming the first missing one."""
    fields = CREDENTIAL_FIELDS.get(provider)
    if fields is None:
        raise ValidationError(f"'{provider}' takes no clinic credentials.", field="provider")
    cleaned = {f.name: str(values.get(f.name, "")).strip() for f in fields}
    for f in fields:
        if not cleaned[f.name]:
            raise ValidationError(f"Enter the {f.label}.", field=f.name)
    return cleaned


def seal(key: SecretStr | None, values: dict[str, str]) -> str:
    return _fernet(key).encrypt(json.dumps(values).encode()).decode()


def unseal(key: SecretStr | None, sealed: str) -> dict[str, str]:
    try:
        return dict(json.loads(_fernet(key).decrypt(sealed.encode())))
    except InvalidToken:
        raise ConfigurationError("Stored provider credentials cannot be read with the current CREDENTIALS_KEY "
                                 "(was the key changed?). Enter them again.") from None

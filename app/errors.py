"""One error base for the application; each subclass carries a message a clinic clerk understands."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the application raises on purpose. ``str(err)`` is safe to show."""


class ConfigurationError(AppError):
    """The environment or a setting is wrong; the operator must fix it."""


class ValidationError(AppError):
    """Input was refused; the message says which field and why."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFoundError(AppError):
    """The object does not exist in the signed-in clinic (or was deleted)."""


class PermissionDenied(AppError):
    """The signed-in role may not do this."""


class AuthenticationError(AppError):
    """A sign-in was refused. The message never says whether the user exists."""


class ConflictError(AppError):
    """The change clashes with existing data (e.g. a username already taken)."""

"""The errors that every face (CLI, dashboard, HTTP) turns into words for the operator."""

from __future__ import annotations

from collections.abc import Mapping


class IntdashError(Exception):
    """Base of every error that is the operator's to read: its text names the problem."""


class ConfigError(IntdashError):
    """A setting is missing or malformed."""


class NotFoundError(IntdashError):
    """No such integration, key, ...."""


class ConflictError(IntdashError):
    """The request contradicts the current state (already removed, wrong type, ...)."""


class VaultError(IntdashError):
    """The vault cannot encrypt or decrypt: missing, wrong or malformed key."""


class FieldErrors(IntdashError):
    """Input failed validation; each problem is tied to the field it concerns."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors: dict[str, str] = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


class StorageError(IntdashError):
    """The database refused to store a change (read-only, or its disk full): that transaction
    was rolled back whole, and what was committed before it stands."""

    retry_after = 60  # seconds a client is asked to wait before trying again


class ReadOnlyDatabase(StorageError):
    """The database can be read but not changed (file, folder or file system read-only)."""

    retry_after = 300


class DiskFull(StorageError):
    """The disk (or quota) holding the database has no room left."""

"""Errors a user can hit. Each carries a one-line message and the fix; the CLI renders them once."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input or machine that they can fix. Exit code 2 at the CLI."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message}\n  fix: {self.fix}"


class ProblemFileError(UserError):
    """A problem.json that cannot be read or does not match the schema."""


class SandboxUnavailable(UserError):
    """The requested sandbox backend cannot be used on this machine."""


class ModelUnavailable(UserError):
    """The requested model cannot be loaded (not installed, wrong path, no GPU...)."""


class ConfigError(UserError, ValueError):
    """A bad option or config file value (also a ValueError: it is one)."""

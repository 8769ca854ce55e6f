"""Errors a user can cause. The CLI prints them as one line and exits non-zero, without a traceback."""


class UserError(Exception):
    """Bad input the user can fix: the message says what to change."""


class ConfigError(UserError):
    """A configuration value is out of range or inconsistent with another."""


class DataError(UserError):
    """Data is missing, unreadable or corrupt."""


class OutputError(UserError):
    """A file could not be written: no space left, no permission, or its folder is not a folder."""

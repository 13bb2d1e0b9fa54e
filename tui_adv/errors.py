"""Errors that a user can fix. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input or environment (config, data, catalog, run id).

    The message is a complete, one-line explanation that says what was looked at and how to fix it.
    """

    exit_code = 2


class NotFoundError(UserError):
    """A run, config or checkpoint that does not exist."""

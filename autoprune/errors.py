"""The one exception type users see: a problem with their input, shown as one line and exit code 2."""


class UserError(Exception):
    """Bad input from the user; the message names the problem and how to fix it."""

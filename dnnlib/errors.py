"""Errors caused by user input. Front ends print the message and exit non-zero, without a traceback."""


class UserError(Exception):
    """Bad input from the user: the message names the file or flag and says what to do."""

"""The exceptions that mean "bad input", not "a bug". Front ends print their message as one line and exit 2;
anything else that escapes a command is a bug: its traceback is printed and the exit status is 1."""


class UserError(Exception):
    """Bad input from the user, found by a front end: the message names the flag and says what to do."""


class InputError(ValueError):
    """Bad input found by library code (a file's content, a value, a grid that does not match): the message names
    the file or the value. A ValueError, so callers that catch ValueError keep working; a plain ValueError is a bug."""


class OutputConflict(InputError):
    """An output cannot be written without losing something this project did not write (or that changed since):
    the message lists what would be lost."""

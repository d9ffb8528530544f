"""The one exception type that reaches the user as a single line (the CLI prints it, exit code 2)."""


class UserError(Exception):
    """Bad input: a config key, a file, a data row. The message names it and says what was expected."""

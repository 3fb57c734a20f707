"""The one exception type shown to users as a single line (the CLI exits 2 on it)."""


class UserInputError(ValueError):
    """Bad input from the user: the message says what is wrong and what to do."""

"""The one exception type the command line turns into a clear line and a non-zero exit."""


class DigitosError(Exception):
    """A problem with the user's input or environment, stated in one line."""

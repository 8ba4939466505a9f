"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class CnnzooError(Exception):
    """Base for errors caused by the user's input (bad file, argument, size), not by a bug."""


class DataError(CnnzooError):
    """A dataset file is missing, truncated, corrupt or hostile. The message names the file."""


class ShapeError(CnnzooError, ValueError):
    """An input size a layer or model cannot take ("does not fit", with the numbers)."""


class CheckpointError(CnnzooError):
    """A run folder or checkpoint that cannot be read or written."""

"""The one error type for bad input data: a one-line message naming the file, column and value."""


class DataError(ValueError):
    """Input data that cannot be used as given (missing, malformed, unsafe)."""

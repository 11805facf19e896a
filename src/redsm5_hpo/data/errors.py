"""Data errors that say which source, what was expected, what was found and how to fix it."""


class DataError(ValueError):
    """A data source cannot be used as it is."""

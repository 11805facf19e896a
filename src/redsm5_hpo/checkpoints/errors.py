"""The checkpoint error, apart from the store (and torch) so that the command line imports it cheaply."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupted or does not fit the model."""

"""The encoder error, apart from the encoder (and torch) so that the command line imports it cheaply."""


class EncoderLoadError(RuntimeError):
    """The encoder could not be loaded; the message says how to fix it."""

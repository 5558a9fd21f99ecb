"""Error types: user errors the CLI reports as one line, never as a traceback."""

__all__ = ["TfcompError", "InputError", "BitstreamError"]


class TfcompError(Exception):
    """An error caused by the user's input or request (reported without a traceback)."""


class InputError(TfcompError, ValueError):
    """A missing, unreadable or unsupported input file or argument."""


class BitstreamError(TfcompError, ValueError):
    """A corrupted, truncated, forged or unsupported compressed file."""

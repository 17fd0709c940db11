"""User-facing errors: one clear sentence plus a hint on what to do.

The CLI prints these as two lines (no traceback unless ``--debug``); the Slicer modules show them in a message box.
"""

from __future__ import annotations


class SSLSegError(Exception):
    """An error caused by the user's input or environment, with a hint on how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class VolumeReadError(SSLSegError):
    """A file or folder could not be read as a 3-D volume."""


class LabelError(SSLSegError):
    """A label map or label table is inconsistent with its image or with itself."""

"""Errors about the user's data: one line naming the file, the record, what is wrong and what was expected.

``DataError`` is the base the ``dt`` command reports as one line with exit code 2; the loaders raise
``AnnotationError`` (a malformed annotation file or record) and the mapper raises ``ImageError``
(a missing, unreadable or wrongly sized image).
"""

from __future__ import annotations

__all__ = ["DataError", "ImageError"]


class DataError(ValueError):
    """Bad user data (annotation file, record or image); the message is one line naming the file."""


class ImageError(DataError):
    """An image that is missing, cannot be decoded, or whose size differs from its annotation."""

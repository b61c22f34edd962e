"""Single-record operations for ``session.operate(key, ops)``.

Each operation is a small tuple ``(op_code, bin_name, value)`` that the C
core encodes directly; build them with these functions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Operation"]

_READ, _WRITE, _INCR, _APPEND, _PREPEND, _TOUCH, _DELETE = 1, 2, 5, 9, 10, 11, 14


class Operation:
    """Factories of basic record operations."""

    @staticmethod
    def get(bin_name: str | None = None) -> tuple:
        """Read one bin, or every bin when ``bin_name`` is None."""
        return (_READ, bin_name, None)

    @staticmethod
    def put(bin_name: str, value: Any) -> tuple:
        """Write a bin (``None`` deletes it)."""
        return (_WRITE, bin_name, value)

    @staticmethod
    def add(bin_name: str, value: int | float) -> tuple:
        """Increment an int/float bin (creating it)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"add() needs an int or float, not {type(value).__name__}")
        return (_INCR, bin_name, value)

    increment = add

    @staticmethod
    def append(bin_name: str, value: str | bytes) -> tuple:
        if not isinstance(value, (str, bytes, bytearray)):
            raise TypeError(f"append() needs str or bytes, not {type(value).__name__}")
        return (_APPEND, bin_name, value)

    @staticmethod
    def prepend(bin_name: str, value: str | bytes) -> tuple:
        if not isinstance(value, (str, bytes, bytearray)):
            raise TypeError(f"prepend() needs str or bytes, not {type(value).__name__}")
        return (_PREPEND, bin_name, value)

    @staticmethod
    def touch() -> tuple:
        """Reset the record's TTL and bump its generation."""
        return (_TOUCH, None, None)

    @staticmethod
    def delete_bin(bin_name: str) -> tuple:
        """Remove one bin."""
        return (_WRITE, bin_name, None)

    @staticmethod
    def delete() -> tuple:
        """Delete the whole record (later ops in the same call may re-create it)."""
        return (_DELETE, None, None)

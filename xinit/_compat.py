"""Old keyword names kept working for one release, with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any


def renamed(func: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """The value of keyword ``new``, taken from its old name ``old`` (with a
    DeprecationWarning pointing at the caller) when only that one was given."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise TypeError(f"{func}() got both {new}= and its deprecated name {old}=")
    warnings.warn(
        f"{func}({old}=...) is deprecated and goes in the next release; use {new}=",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value

"""Memory checks before large allocations: a request for more than the machine has free is
refused at once, with the size it needs, instead of swapping or being killed half-way."""

from __future__ import annotations

import os

from .errors import XinitError


class InsufficientMemoryError(XinitError, MemoryError, ValueError):
    """A build, draw or read would need more memory than is available (nothing allocated)."""


def available_memory() -> int | None:
    """Bytes of memory available now: ``MemAvailable`` from ``/proc/meminfo``, else the free
    physical pages from ``os.sysconf``; None where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human(nbytes: float) -> str:
    """``3.64 TiB``: a byte count for messages."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(nbytes) < 1024 or unit == "PiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PiB"  # pragma: no cover


def check_allocation(nbytes: int, what: str) -> None:
    """Refuse (:class:`InsufficientMemoryError`) when ``what`` needs more than the memory
    available now; say how much it needs and how much there is."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise InsufficientMemoryError(
            f"{what} needs {human(nbytes)} of memory but {human(free)} is available; "
            "nothing was allocated"
        )


__all__ = ["InsufficientMemoryError", "available_memory", "check_allocation", "human"]

"""A progress bar for work large enough to wait on (a big build's init, a large port)."""

from __future__ import annotations

import contextlib

PROGRESS_MIN_ELEMENTS = 1 << 26  # show a progress bar from 64 Mi values (256 MB fp32) up


@contextlib.contextmanager
def progress(total: int, label: str):
    """Yield ``advance(n)``; a rich progress bar on stderr when the work is large."""
    if total < PROGRESS_MIN_ELEMENTS:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)

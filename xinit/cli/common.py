"""What every verb of the ``xinit`` command shares: argument types and wide printing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from xinit.backends import FRAMEWORKS

# The zoo's reference framework first (PaddleOCR's ResNet45 comes from Paddle), then the rest.
PARITY_ORDER = ("paddle", *(f for f in FRAMEWORKS if f != "paddle"))


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers; got {text!r}"
        ) from None


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _plain(text: str) -> str:
    """Docstring text for the terminal: reST markup (````x````, ``:func:`x```) removed."""
    import re

    text = re.sub(r":[a-z]+:`([^`]*)`", r"\1", text)
    return re.sub(r"``([^`]*)``", r"\1", text)


def _print_wide(*renderables, width: int | None = None) -> None:
    """Print rich tables; when stdout is not a terminal (a pipe, a file, CI), at their
    natural width, so rows are not wrapped or cut at rich's default of 80 columns."""
    from rich.console import Console
    from rich.measure import Measurement

    if width is None and not sys.stdout.isatty():
        probe = Console(width=10_000)
        sizes = [Measurement.get(probe, probe.options, r).maximum for r in renderables]
        width = max([80, *sizes])
    console = Console(width=width, highlight=False)
    for renderable in renderables:
        console.print(renderable)


def print_result(result, fmt: str, show_table: Callable[[], None]) -> None:
    """A result object as ``--format`` asks: its JSON, its Markdown, or (``table``) whatever
    ``show_table`` prints with rich."""
    if fmt == "json":
        print(result.to_json())
    elif fmt == "md":
        print(result.to_markdown())
    else:
        show_table()


class _Renamed(argparse.Action):
    """An option's deprecated spelling: stores into the new option's ``dest`` and says so on
    stderr (kept for one release)."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and goes in the next "
            f"release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_frameworks(p: argparse.ArgumentParser, option: str, default: str, **kwargs) -> None:
    """``--frameworks`` (or ``--framework``) and its deprecated spelling ``--backends``
    (``--backend``), both into ``args.frameworks`` (``args.framework``)."""
    dest = option.removeprefix("--")
    p.add_argument(option, dest=dest, default=default, **kwargs)
    old = option.replace("framework", "backend")
    p.add_argument(old, dest=dest, action=_Renamed, new=option)

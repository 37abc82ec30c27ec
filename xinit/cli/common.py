"""What every verb of the ``xinit`` command shares: argument types and wide printing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from xinit.backends import FRAMEWORKS
from xinit.errors import ArgumentError

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


def file_format(path: str, given: str | None, option: str) -> str:
    """The checkpoint format of ``path``: ``given`` (the value of ``option``), else from its
    suffix; a suffix that names no format is refused, saying which option names one."""
    import os

    from xinit.checkpoints import FORMATS, SUFFIXES, detect_format

    suffix = os.path.splitext(path)[1].lower()
    if given is None and suffix not in SUFFIXES:
        raise ArgumentError(
            f"{path}: cannot tell the checkpoint format from the suffix {suffix!r} (known: "
            f"{', '.join(SUFFIXES)}); name it with {option} {{{','.join(FORMATS)}}}"
        )
    return detect_format(path, given)


def output_path(text: str, parents: bool):
    """``--out``'s path, checked before any work (:func:`xinit.checkpoints.check_destination`);
    its folder must exist unless ``--parents`` (``parents``) asks to make it."""
    from xinit.checkpoints import CheckpointWriteError, check_destination

    path = check_destination(text)
    folder = path.parent
    if not parents and not folder.is_dir():
        why = "is not a folder" if folder.exists() else "does not exist"
        raise CheckpointWriteError(
            f"cannot write {text}: the folder {folder} {why} (pass --parents to make it)"
        )
    return path


def add_parents(p: argparse.ArgumentParser) -> None:
    """``--parents``: make the output's missing folders (as ``mkdir -p``)."""
    p.add_argument("--parents", action="store_true", help="make the output's missing folders")


def quiet_frameworks() -> None:
    """Silence the frameworks' start-up chatter that says nothing about the user's request:
    Paddle's "No ccache found" import warning and JAX's "Unable to initialize backend 'tpu'"
    (an INFO record Paddle's root log handler would print). Every verb runs after this."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message="No ccache found")
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def _print_wide(*renderables, width: int | None = None, min_width: int = 80) -> None:
    """Print rich renderables (tables, text) ``width`` columns wide (a terminal's width by
    default, at least ``min_width``); when stdout is not a terminal (a pipe, a file, CI), at
    their natural width, so no column is wrapped, cut to ``…`` or dropped."""
    from rich.console import Console
    from rich.measure import Measurement

    if width is None and not sys.stdout.isatty():
        probe = Console(width=10_000)
        sizes = [Measurement.get(probe, probe.options, r).maximum for r in renderables]
        width = max([min_width, *sizes])
    elif width is None and min_width > 80:
        width = max(min_width, Console().width)
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

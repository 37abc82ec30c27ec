"""The ``xinit`` command: the library's verbs on the terminal.

Each verb is one ``cmd_<verb>(args)`` function that parses its arguments, calls the library
and renders the result it returns; each module here registers its verbs' arguments. The
frameworks are imported only by the verb that needs them, so ``xinit --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys

from xinit.errors import XinitError

from . import converting, demo, export, measure, porting, weights
from .common import _plain, quiet_frameworks

# Failures a user can cause and fix: every error xinit raises on purpose (bad input, a
# missing framework, too little memory, a checkpoint that cannot be read or written) and the
# operating system's (a file that is missing, a folder, a full disk): one line on stderr and
# exit code 2. Anything else is a bug and keeps its traceback.
EXPECTED_FAILURES = (XinitError, OSError)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xinit", description=_plain(__doc__.splitlines()[0]))
    sub = p.add_subparsers(dest="verb", required=True)
    demo.register(sub)
    measure.register_stats(sub)
    measure.register_summary(sub)
    measure.register_defaults(sub)
    weights.register(sub)
    porting.register(sub)
    converting.register(sub)
    measure.register_diagnose(sub)
    export.register(sub)
    return p


def error_message(err: BaseException) -> str:
    """One line saying what failed, where and why (an OSError's file name and reason)."""
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename is not None else ""
        extra = f" -> {err.filename2}" if err.filename2 is not None else ""
        return f"{where}{err.strerror}{extra}"
    if isinstance(err, KeyError) and len(err.args) == 1:
        return str(err.args[0])
    if isinstance(err, MemoryError):
        return f"out of memory: {err}" if str(err) else "out of memory"
    return str(err) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_frameworks()
    try:
        return int(args.func(args) or 0)
    except EXPECTED_FAILURES as err:
        print(f"xinit {args.verb}: error: {error_message(err)}", file=sys.stderr)
        return 2


__all__ = ["main", "error_message", "EXPECTED_FAILURES"]

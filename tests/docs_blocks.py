"""The runnable code blocks of README.md and docs/*.md, read and run as a user would.

Python, console and bash fences run; text and unlabelled fences are output. An HTML comment
on the line before a fence, ``<!-- skip: reason -->``, marks a block the test cannot run (a
GPU, several processes, a placeholder); ``<!-- raises -->`` a block of statements that each
fail with the error written in the comment under it. What a console block shows under its
``$`` lines, and a Markdown table or plain fence right after it, must be in the output (``...``
stands for anything; a figure like ``2.27e-06`` or ``0.53`` for one within 10x of it: "about").
``docs/architecture.md`` (Tests) documents the markers.
"""

from __future__ import annotations

import ast
import math
import os
import re
import shlex
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
RUNNABLE = ("python", "console", "bash")
_FENCE = re.compile(r"^```(\w*)\s*$")
# a measured figure: scientific (2.27e-06) or a decimal (0.53); not a version (2.13.0)
_FIGURE = r"[-+]?\d\.\d+e[-+]\d+|(?<![\d.])\d+\.\d+(?![\d.e])"
_PIECES = re.compile(rf"(\.\.\.|…|{_FIGURE})")
_MARK = re.compile(r"^<!--\s*(?:skip:\s*(?P<skip>\S.*?)|(?P<raises>raises))\s*-->$")
# `xinit ...` runs the project's entry point (pyproject's xinit.cli:main) in this interpreter.
_XINIT = "import sys; from xinit.cli import main; sys.argv[0] = 'xinit'; sys.exit(main())"


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and why it is skipped (if so)."""

    file: Path
    line: int
    lang: str
    code: str
    skip: str | None
    raises: bool = False
    shown: tuple[str, ...] = ()  # output the docs show for a console block

    @property
    def where(self) -> str:
        name = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{name}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The runnable fenced blocks of one Markdown file, in order."""
    found, lines = [], path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```")
        if m.group(1) in RUNNABLE:
            before = next((s.strip() for s in reversed(lines[:i]) if s.strip()), "")
            mark = _MARK.match(before)
            if before.startswith("<!--") and not mark:
                markers = "<!-- skip: reason --> or <!-- raises -->"
                raise ValueError(f"{path}:{i + 1}: {before!r} is no marker: {markers}")
            skip, raises = (mark["skip"], bool(mark["raises"])) if mark else (None, False)
            code = "\n".join(lines[i + 1 : end]) + "\n"
            shown = _shown(lines, i + 1, end) if m.group(1) == "console" else ()
            found.append(Block(path, i + 1, m.group(1), code, skip, raises, shown))
        i = end + 1
    return found


def _shown(lines: list[str], start: int, end: int) -> tuple[str, ...]:
    """A console block's output lines (after its first ``$``), then the table and the
    unlabelled fence right after it."""
    inside = "\n".join(lines[start:end]).replace("\\\n", " ").splitlines()
    first = next((k for k, s in enumerate(inside) if s.startswith("$ ")), len(inside))
    out = [s for s in inside[first:] if not s.startswith(("$ ", "#"))]
    after = iter(lines[end + 1 :])
    for s in after:
        if s.rstrip() == "```":
            out += iter(after.__next__, "```")
            break
        if s.strip() and not s.startswith("|"):
            break
        out.append(s)
    elided = re.compile(r"^\s*(\.\.\.|…)?\s*$|^\|( *(\.\.\.)? *\|)+$")
    return tuple(s for s in out if not elided.match(s))


def check_shown(block: Block, output: str) -> None:
    """Every line the docs show must be in ``output`` (see the module docstring)."""
    got = [s.strip() for s in output.splitlines()]
    missing = [s for s in block.shown if not any(_agrees(s, g) for g in got)]
    assert not missing, f"{block.where}: the docs show lines the commands did not print:\n" + (
        "\n".join(missing) + f"\n--- printed:\n{output[-6000:]}"
    )


def _agrees(shown: str, got: str) -> bool:
    pieces = _PIECES.split(shown.strip())
    pattern = "".join(
        ".*" if p in ("...", "…") else f"({_FIGURE})" if re.fullmatch(_FIGURE, p) else re.escape(p)
        for p in pieces
    )
    m = re.match(pattern, got)
    figures = [float(p) for p in pieces if re.fullmatch(_FIGURE, p)]
    return bool(m) and all(_about(f, float(g)) for f, g in zip(figures, m.groups()))


def _about(shown: float, got: float) -> bool:
    """Within 10x (rounding differs between machines); anything below 1e-6 counts as 1e-6."""
    return abs(math.log10(max(abs(got), 1e-6) / max(abs(shown), 1e-6))) <= 1


def run_python(block: Block, namespace: dict) -> None:
    """Exec a python block in ``namespace``; a failure raises naming the block's line."""
    try:
        if block.raises:
            _run_raising(block, namespace)
        else:
            exec(compile(block.code, block.where, "exec"), namespace)
    except Exception as error:
        detail = "".join(traceback.format_exception(error)[-6:])
        raise AssertionError(f"{block.where} failed:\n{detail}") from error


def _run_raising(block: Block, namespace: dict) -> None:
    """Each statement must raise the error its next line shows (``# SpecError: message``)."""
    lines = block.code.splitlines()
    for stmt in ast.parse(block.code).body:
        shown = lines[stmt.end_lineno].lstrip("# ").strip() if stmt.end_lineno < len(lines) else ""
        try:
            exec(compile(ast.Module([stmt], []), block.where, "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - compared with the documented text below
            got = f"{type(error).__name__}: {error}"
            assert got == shown, (
                f"{block.where}: line {stmt.lineno} raised\n  {got}\nthe docs show\n  {shown}"
            )
        else:
            raise AssertionError(f"{block.where}: line {stmt.lineno} raised nothing; docs: {shown}")


def commands(block: Block) -> list[str]:
    """The commands a user types from a console or bash block (``$`` lines if it has any)."""
    raw = block.code.replace("\\\n", " ").splitlines()
    prompted = [s[2:] for s in raw if s.startswith("$ ")]
    if prompted:
        return prompted
    return [s for s in raw if s.strip() and not s.lstrip().startswith("#")]


def argv(command: str) -> list[str]:
    """A documented command as the argv that runs it here: ``xinit`` and ``python`` only."""
    words = shlex.split(command, comments=True)
    if words[0] == "xinit":
        return [sys.executable, "-c", _XINIT, *words[1:]]
    if words[0] == "python":
        return [sys.executable, *words[1:]]
    raise ValueError(f"cannot run {command!r}: mark the block <!-- skip: reason -->")


def run_command(command: str, cwd: Path, timeout: float = 600) -> str:
    """Run one documented command in ``cwd``: its stdout; a non-zero exit raises with it."""
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    env = {**os.environ, "PYTHONPATH": path}
    done = subprocess.run(
        argv(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode:
        raise AssertionError(
            f"`{command}` exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def run_file(path: Path, cwd: Path) -> tuple[int, list[Block]]:
    """Run every block of ``path`` in order in ``cwd`` (python blocks share one namespace);
    returns how many ran and the skipped ones. ``cwd`` gets a link to examples/."""
    (cwd / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    namespace: dict = {"__name__": "__main__"}
    ran, skipped = 0, []
    previous = Path.cwd()
    os.chdir(cwd)
    sys.path.insert(0, str(cwd))  # as `python` in that folder: `from examples... import`
    try:
        for block in blocks(path):
            if block.skip:
                skipped.append(block)
                continue
            if block.lang == "python":
                run_python(block, namespace)
            else:
                output = "".join(run_command(command, cwd) for command in commands(block))
                check_shown(block, output)
            ran += 1
    finally:
        sys.path.remove(str(cwd))
        os.chdir(previous)
    return ran, skipped


def skip_summary() -> str:
    """One line: how many runnable blocks the docs hold and how many are marked skipped."""
    every = [b for path in DOCS for b in blocks(path)]
    skipped = [b for b in every if b.skip]
    return f"docs test: {len(every)} runnable code blocks, {len(skipped)} of them marked skip"

"""Run the curated semantic mutants of ``tools/mutants.toml`` against the tests of their area.

Each mutant is one plausible bug in a convention xinit promises (a fan without groups, a
transposition dropped, a momentum untranslated, a budget not summed ...): a file, an exact
snippet of it, its replacement, and the test files that must notice. The runner copies the
tree into a temporary folder (one copy per job: two mutants at once on two cores), plants
each mutant there in turn, runs its tests and puts the file back; the checkout itself is never
written, so Ctrl-C leaves nothing behind.

    python tools/mutants.py                 every mutant (./dev.sh mutants)
    python tools/mutants.py -k momentum     the mutants whose name contains "momentum"
    python tools/mutants.py --baseline      first run every area's tests unmutated
    python tools/mutants.py --list          the list, without running anything
    python tools/mutants.py -j 1            one mutant at a time (default: one per core, at most 2)

A mutant is killed when its tests fail (pytest exit 1); a pytest error (exit 2 and over: an
import or collection error, a crash) also counts, shown as "error"; a run over TIMEOUT_S
counts as survived. Exit status 0 when every mutant is killed, 1 when one survives, 2 when
the list is stale (a snippet not found exactly once in its file).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from queue import Queue

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
LIST = Path(__file__).with_suffix(".toml")
TIMEOUT_S = 300


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``original`` (found exactly once in ``file``) becomes ``replacement``;
    ``tests`` (pytest arguments: files, ``file::test``, ``-k expr``) must fail."""

    name: str
    area: str
    file: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    status: str  # killed, survived, stale, timeout, error
    seconds: float
    detail: str


def load_list(path: Path = LIST) -> list[Mutant]:
    """The mutants of ``path``, in file order; a malformed entry names itself."""
    with open(path, "rb") as f:
        data = tomllib.load(f)
    out = []
    for i, entry in enumerate(data.get("mutant", [])):
        missing = {"name", "area", "file", "original", "replacement", "tests"} - set(entry)
        if missing:
            raise SystemExit(f"{path}: mutant #{i} lacks {', '.join(sorted(missing))}")
        out.append(Mutant(**{**entry, "tests": tuple(entry["tests"])}))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise SystemExit(f"{path}: two mutants share a name")
    return out


def copy_tree(dst: Path) -> None:
    """The checkout's tracked and unignored files into ``dst``, with the ``xinit/backends``
    link the worktree has (git ignores it), so ``PYTHONPATH=dst`` imports the copy."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        rel = raw.decode()
        src = ROOT / rel
        if not src.is_file() or src.is_symlink() or rel == "xinit/backends":
            continue
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    link = dst / "xinit" / "backends"
    if not link.exists():
        link.symlink_to(Path("..") / "backends")


# Plugins no mutant's tests use: importing hypothesis's pytest plugin and anyio's costs about a
# second and a half of each run's start-up (a third of a short one); @given tests still run.
UNUSED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")


def pytest_command(tests: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0",
            *UNUSED_PLUGINS, "-W", "ignore", *tests]  # fmt: skip


def run_tests(tree: Path, tests: tuple[str, ...]) -> tuple[int | None, str]:
    """pytest on ``tests`` in ``tree``: (exit code or None on timeout, its output)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    # the checkout's JAX compilation cache (git-ignored), shared with its own test runs
    env.setdefault(
        "JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax-compilation-cache")
    )
    try:
        done = subprocess.run(
            pytest_command(tests), cwd=tree, env=env, capture_output=True, text=True,
            timeout=TIMEOUT_S,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, ""
    return done.returncode, done.stdout + done.stderr


def first_failure(output: str) -> str:
    """The first failing test of a pytest run (its ``FAILED``/``ERROR`` line), shortened."""
    match = re.search(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    if not match:
        return ""
    return match.group(1).split("/")[-1]


def plant(tree: Path, mutant: Mutant) -> str | None:
    """Write ``mutant`` into ``tree``; returns the original text, or None when stale."""
    path = tree / mutant.file
    text = path.read_text()
    if text.count(mutant.original) != 1:
        return None
    path.write_text(text.replace(mutant.original, mutant.replacement))
    return text


def run_mutant(tree: Path, mutant: Mutant) -> Outcome:
    start = time.perf_counter()
    original = plant(tree, mutant)
    if original is None:
        found = (tree / mutant.file).read_text().count(mutant.original)
        return Outcome(mutant, "stale", 0.0, f"snippet found {found} times in {mutant.file}")
    try:
        code, output = run_tests(tree, mutant.tests)
    finally:
        (tree / mutant.file).write_text(original)
    seconds = time.perf_counter() - start
    if code is None:
        return Outcome(mutant, "timeout", seconds, f"over {TIMEOUT_S} s (counted as survived)")
    if code == 0:
        return Outcome(mutant, "survived", seconds, "every test passed")
    if code == 1:
        return Outcome(mutant, "killed", seconds, first_failure(output))
    tail = output.strip().splitlines()[-1:] or [""]
    return Outcome(mutant, "error", seconds, f"pytest exit {code}: {tail[0][:80]}")


STYLE = {"killed": "green", "survived": "bold red", "timeout": "red", "stale": "yellow",
         "error": "red"}  # fmt: skip


def table(outcomes: list[Outcome]) -> Table:
    t = Table(title="Semantic mutants (tools/mutants.toml)", show_lines=False)
    for col in ("area", "mutant", "file", "result", "s", "caught by / why"):
        t.add_column(col, justify="right" if col == "s" else "left", overflow="fold")
    for o in outcomes:
        m = o.mutant
        t.add_row(
            m.area, m.name, m.file, f"[{STYLE[o.status]}]{o.status}[/]", f"{o.seconds:.0f}",
            o.detail + (f" ({m.note})" if m.note else ""),
        )  # fmt: skip
    return t


def run_all(
    mutants: list[Mutant], baseline: bool, console: Console, jobs: int = 1
) -> list[Outcome] | None:
    """Every mutant, ``jobs`` at a time, each job in its own temporary copy of the tree (None:
    the baseline failed). Outcomes come back in list order."""
    jobs = max(1, min(jobs, len(mutants)))
    with tempfile.TemporaryDirectory(prefix="xinit-mutants-") as tmp:
        trees: Queue[Path] = Queue()
        for i in range(jobs):
            tree = Path(tmp) / f"tree{i}"
            copy_tree(tree)
            trees.put(tree)
        if baseline:
            tree = trees.get()
            for tests in dict.fromkeys(m.tests for m in mutants):
                code, output = run_tests(tree, tests)
                if code != 0:
                    console.print(f"[red]baseline fails[/] {' '.join(tests)}:\n{output[-2000:]}")
                    return None
            trees.put(tree)

        def in_a_free_tree(m: Mutant) -> Outcome:
            tree = trees.get()  # a copy no other job is planting into
            try:
                return run_mutant(tree, m)
            finally:
                trees.put(tree)

        outcomes: dict[str, Outcome] = {}
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(in_a_free_tree, m) for m in mutants]
            for future in as_completed(futures):
                outcome = future.result()
                outcomes[outcome.mutant.name] = outcome
                name, status, seconds = outcome.mutant.name, outcome.status, outcome.seconds
                console.print(f"{status:>8}  {name}  ({seconds:.0f} s)")
    return [outcomes[m.name] for m in mutants]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-k", dest="match", action="append", default=[],
        help="only mutants whose name contains this (repeatable: any of them)",
    )  # fmt: skip
    parser.add_argument("--list", action="store_true", help="print the list and exit")
    parser.add_argument(
        "--baseline", action="store_true", help="first check each area's tests pass unmutated"
    )
    parser.add_argument(
        "-j", dest="jobs", type=int, default=min(2, os.cpu_count() or 1),
        help="mutants run at once, each in its own copy of the tree (default: cores, at most 2)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    wanted = [w.lower() for w in args.match]
    mutants = [m for m in load_list() if not wanted or any(w in m.name.lower() for w in wanted)]
    if args.list:
        for m in mutants:
            console.print(f"[bold]{m.name}[/] ({m.area}) {m.file}: {' '.join(m.tests)}")
        return 0
    start = time.perf_counter()
    try:
        outcomes = run_all(mutants, args.baseline, console, args.jobs)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the checkout was never written; the copy is gone")
        return 130
    if outcomes is None:
        return 2
    console.print(table(outcomes))
    killed = sum(o.status == "killed" or o.status == "error" for o in outcomes)
    total = len(outcomes)
    score = 100.0 * killed / total if total else 100.0
    console.print(
        f"mutation score: {killed}/{total} killed ({score:.0f}%) in "
        f"{time.perf_counter() - start:.0f} s ({args.jobs} at a time)"
    )
    if any(o.status == "stale" for o in outcomes):
        return 2
    return 0 if killed == total else 1


if __name__ == "__main__":
    sys.exit(main())

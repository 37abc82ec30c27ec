"""Rendering the defaults catalogue and the conventions: Markdown and rich tables, analytic
densities for plots.

Pure presentation of :class:`~xinit.defaults.catalogue.DefaultEntry` records and
:class:`~xinit.defaults.conventions.Convention` rows; it computes no default itself. The
short texts of a law that records also hold live in :mod:`xinit.defaults.laws`. ``rich`` is
imported only by the ``*_rich`` functions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xinit.distributions import Distribution, NormalDist, TruncNormalDist, UniformDist

from .conventions import CONVENTIONS, Convention
from .entry import DefaultEntry, native_label
from .laws import short, std_ratio
from .layer_names import describe, layer_numbers


def _cell(
    entry: DefaultEntry | None, ref: DefaultEntry | None, sep: str, line: str | None = None
) -> str:
    """One framework's cell: ``[native name] law · std · ×ratio``; with ``line`` (a line
    break), also the rule in words and the native tensors with their shape."""
    if entry is None:
        return "-"
    if entry.distribution is None:
        return f"n/a ({entry.note})"
    name = f"[{entry.native_name}] " if entry.native_name != entry.param else ""
    if line is not None:
        name = ""  # on its own line below, with the shape
    text = f"{name}{short(entry.distribution)}"
    if entry.distribution.random:
        text += f"{sep}std {entry.std:.4g}"
    if ref is not None and ref is not entry and ref.distribution is not None:
        ratio = std_ratio(entry.std, ref.std)
        if ratio is not None:
            text += f"{sep}×{ratio:.3g}"
        elif not entry.distribution.random and not ref.distribution.random:
            text += f"{sep}{'=' if entry.distribution == ref.distribution else '≠'}"
    if line is not None:
        shape = str(tuple(entry.native_shape))
        each = " each" if len(entry.leaves) > 1 else ""
        also = f" = {native_label(entry.aliases)}" if entry.aliases else ""
        text += f"{line}{entry.rule}{line}{entry.native_name}{also} {shape}{each}"
    return text


def table_rows(
    entries: list[DefaultEntry],
    reference: str | None = None,
    sep: str = " · ",
    line: str | None = None,
) -> tuple[list[str], list[tuple[str, str, list[str]]]]:
    """(frameworks, rows): one row per (layer, param), one cell per framework; with ``line``
    (the line break to use), each cell also has the rule and the native tensors."""
    frameworks = list(dict.fromkeys(e.framework for e in entries))
    by_key: dict[tuple[Any, str], dict[str, DefaultEntry]] = {}
    for e in entries:
        by_key.setdefault((e.spec, e.param), {})[e.framework] = e
    rows = []
    for (_, param), cells in by_key.items():
        ref = cells.get(reference) if reference else None
        first = next(iter(cells.values()))
        label, numbers = first.layer, layer_numbers(first.spec)
        if numbers["groups"] != 1:
            groups = numbers["groups"]
            label += " (depthwise)" if groups == numbers["in"] else f" (groups={groups})"
        rows.append((label, param, [_cell(cells.get(fw), ref, sep, line) for fw in frameworks]))
    return frameworks, rows


def _layers_of(entries: list[DefaultEntry]) -> str:
    return ", ".join(dict.fromkeys(describe(e.spec) for e in entries))


_DETAIL = "each cell: the law at these dims, the framework's rule, its own tensors (shape)"


def notes(entries: list[DefaultEntry]) -> list[tuple[str, str]]:
    """(framework, note) of what a framework's block does beyond its children (or that it
    has no such block), once each: a block's rows are its layers' rows, and this says why."""
    out: dict[tuple[str, str], None] = {}
    for e in entries:
        if e.supported and e.note:
            out[(e.framework, e.note)] = None
    return list(out)


def to_markdown(entries: list[DefaultEntry], reference: str | None = None, detail=False) -> str:
    """A Markdown table: rows layer x parameter, columns frameworks; ``detail`` adds each
    framework's rule and native tensors to its cell (the one-layer, side-by-side view)."""
    frameworks, rows = table_rows(entries, reference, line="<br>" if detail else None)
    ref = f"; ×: std relative to {reference}" if reference else ""
    more = f"; {_DETAIL}" if detail else ""
    lines = [
        f"Default initialisation of {_layers_of(entries)}{ref}; [name]: the framework's own "
        f"parameter name{more}.",
        "",
        "| layer | param | " + " | ".join(frameworks) + " |",
        "|---|---|" + "---|" * len(frameworks),
    ]
    for layer, param, cells in rows:
        cells = [c.replace("|", "\\|") for c in cells]
        lines.append(f"| {layer} | {param} | " + " | ".join(cells) + " |")
    if notes(entries):
        lines.append("")
        lines.extend(f"- {fw}: {note}" for fw, note in notes(entries))
    return "\n".join(lines) + "\n"


def to_rich(entries: list[DefaultEntry], reference: str | None = None, detail=False):
    """A rich Table (imported lazily) of the same content as :func:`to_markdown`."""
    from rich.markup import escape
    from rich.table import Table

    sep, line = (" · ", "\n") if detail else ("\n", None)
    frameworks, rows = table_rows(entries, reference, sep=sep, line=line)
    ref = f" (× = std / {reference}'s)" if reference else ""
    caption = [_DETAIL] if detail else []
    caption += [f"{fw}: {note}" for fw, note in notes(entries)]
    table = Table(
        title=f"framework defaults: {_layers_of(entries)}{ref}",
        caption="\n".join(caption) or None,
        show_lines=True,
    )
    table.add_column("layer", style="bold", overflow="fold")
    table.add_column("param", overflow="fold")
    for fw in frameworks:
        table.add_column(fw, overflow="fold")
    for layer, param, cells in rows:
        table.add_row(layer, param, *(escape(c) for c in cells))
    return table


def conventions_markdown(items: list[Convention] | None = None) -> str:
    """The conventions (all, or ``items``) as a Markdown table, one column per framework."""
    items = list(CONVENTIONS) if items is None else items
    lines = ["| topic | torch | paddle | flax | note |", "|---|---|---|---|---|"]
    for c in items:
        cells = [c.topic, c.torch, c.paddle, c.flax, c.note]
        lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def conventions_rich(items: list[Convention] | None = None):
    """A rich Table (imported lazily) of the same content as :func:`conventions_markdown`."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="conventions around initialisation", show_lines=True)
    for col in ("topic", "torch", "paddle", "flax", "note"):
        table.add_column(col, style="bold" if col == "topic" else None, overflow="fold")
    for c in list(CONVENTIONS) if items is None else items:
        table.add_row(*(escape(x) for x in (c.topic, c.torch, c.paddle, c.flax, c.note)))
    return table


def density(dist: Distribution, x: np.ndarray) -> np.ndarray:
    """The analytic probability density of ``dist`` at ``x`` (for plots)."""
    x = np.asarray(x, dtype=float)
    if isinstance(dist, UniformDist):
        inside = (x >= dist.low) & (x <= dist.high)
        return np.where(inside, 1.0 / (dist.high - dist.low), 0.0)
    if isinstance(dist, NormalDist):
        z = (x - dist.mu) / dist.sigma
        return np.exp(-0.5 * z * z) / (dist.sigma * math.sqrt(2.0 * math.pi))
    if isinstance(dist, TruncNormalDist):
        z = (x - dist.mu) / dist.sigma
        a, b = dist._ab()
        mass = 0.5 * (math.erf(b / math.sqrt(2.0)) - math.erf(a / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * z * z) / (dist.sigma * math.sqrt(2.0 * math.pi) * mass)
        return np.where((x >= dist.low) & (x <= dist.high), pdf, 0.0)
    raise TypeError(f"no density for {dist!r}")


__all__ = [
    "notes",
    "table_rows",
    "to_markdown",
    "to_rich",
    "conventions_markdown",
    "conventions_rich",
    "density",
]

"""The parity report: one row per layer, each pair's difference and verdict, rendered as a
rich table, markdown, a dict (JSON) or a plot of the difference against the float32 band."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._parity_base import THRESHOLD, Diff

HERE = "<--- *** HERE ***"


@dataclass
class ParityRow:
    """One layer (or, in the BatchNorm section, one statistic of one layer)."""

    path: str
    kind: str
    shape: tuple[int, ...]
    diffs: dict[str, Diff]  # pair label -> diff

    @property
    def passed(self) -> bool:
        return all(d.passed for d in self.diffs.values())


@dataclass
class ParityReport:
    labels: list[str]
    pairs: list[tuple[str, str]]
    # pair label -> rtol; None: judged against float32 rounding (ratio <= threshold)
    rtol: dict[str, float | None]
    atol: float | None
    rows: list[ParityRow]
    bn_rows: list[ParityRow] = field(default_factory=list)
    # BatchNorm section only: label -> {"path|statistic": values} (batch_mean, batch_var,
    # momentum, running_mean, running_var after the step)
    bn_stats: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    input_shape: tuple[int, ...] = ()
    # native models: label -> parameter-free submodules only that model has (not compared)
    unmatched: dict[str, list[str]] = field(default_factory=dict)
    # native models: label -> layers holding parameters that no other model has
    missing: dict[str, list[str]] = field(default_factory=dict)
    threshold: float = THRESHOLD

    @property
    def rounding_verdict(self) -> bool:
        """Whether the layers were judged against float32 rounding (no rtol/atol given)."""
        return any(r is None for r in self.rtol.values())

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.rows) and all(r.passed for r in self.bn_rows)

    @property
    def first_divergent(self) -> ParityRow | None:
        """The first layer, in execution order, where some pair fails (None: all pass)."""
        return next((r for r in self.rows if not r.passed), None)

    @property
    def first_divergent_bn(self) -> ParityRow | None:
        return next((r for r in self.bn_rows if not r.passed), None)

    def worst(self, pair: str | None = None, bn: bool = False) -> float:
        """The largest max-rel diff of ``pair`` (all pairs when None) over the layers."""
        rows = self.bn_rows if bn else self.rows
        values = [d.max_rel for r in rows for label, d in r.diffs.items() if pair in (None, label)]
        return max(values, default=0.0)

    def worst_ratio(self, pair: str | None = None) -> float:
        """The largest difference-to-rounding ratio of ``pair`` (all pairs when None)."""
        values = [
            d.ratio
            for r in self.rows
            for label, d in r.diffs.items()
            if pair in (None, label) and d.ratio is not None
        ]
        return max(values, default=0.0)

    @property
    def nonfinite_rows(self) -> list[ParityRow]:
        """Layers whose reference output holds NaN or Inf (in the BatchNorm section too)."""
        rows = [*self.rows, *self.bn_rows]
        return [r for r in rows if any(d.nonfinite for d in r.diffs.values())]

    def _tolerance(self, label: str) -> str:
        rtol = self.rtol[label]
        if rtol is None:
            return (
                f"ratio to float32 rounding {self.worst_ratio(label):.2f}, max {self.threshold:g}"
            )
        return f"rtol {rtol:.0e}" + (f", atol {self.atol:.0e}" if self.atol else "")

    def summary(self) -> str:
        lines = []
        for label in self.rtol:
            lines.append(
                f"{label}: worst max rel diff {self.worst(label):.2e} over {len(self.rows)} "
                f"layers ({self._tolerance(label)})"
                + (
                    f"; BatchNorm train step {self.worst(label, bn=True):.2e}"
                    if self.bn_rows
                    else ""
                )
            )
        for label, paths in self.missing.items():
            if paths:
                lines.append(
                    f"{label}: {len(paths)} layer(s) with parameters and no counterpart in the "
                    f"others, not compared: {_some(paths)}"
                )
        for label, paths in self.unmatched.items():
            if paths:
                lines.append(
                    f"{label}: {len(paths)} parameter-free submodule(s) with no counterpart "
                    f"in the others, not compared: {_some(paths)}"
                )
        nonfinite = self.nonfinite_rows
        if nonfinite:
            lines.append(
                f"warning: NaN/Inf in the reference's output at {len(nonfinite)} layer(s), "
                f"first {nonfinite[0].path or '<root>'}: only finite values were compared"
            )
        first = self.first_divergent
        if first is not None:
            bad = "; ".join(_why(k, d) for k, d in first.diffs.items() if not d.passed)
            lines.append(
                f"FAIL: first divergent layer: {first.path or '<root>'} ({first.kind}; {bad})"
            )
        elif self.first_divergent_bn is not None:
            r = self.first_divergent_bn
            lines.append(f"FAIL: first divergent BatchNorm statistic: {r.path} {r.kind}")
        else:
            lines.append("PASS: every layer agrees")
        return "\n".join(lines)

    # ---- rendering ------------------------------------------------------------------------
    def _columns(self, label: str, with_abs: bool) -> list[str]:
        if self.rtol[label] is None:
            return ["max abs", "noise", "ratio"] if with_abs else ["ratio"]
        return ["max abs", "max rel"] if with_abs else ["max rel"]

    def _values(self, d: Diff, label: str, with_abs: bool) -> list[str]:
        if self.rtol[label] is None:
            noise = "-" if d.noise is None else f"{d.noise:.2e}"
            ratio = "-" if d.ratio is None else f"{d.ratio:.2f}"
            return [f"{d.max_abs:.2e}", noise, ratio] if with_abs else [ratio]
        return [f"{d.max_abs:.2e}", f"{d.max_rel:.2e}"] if with_abs else [f"{d.max_rel:.2e}"]

    def _cells(self, rows, mark_first, max_rows: int | None, with_abs: bool = True):
        shown = rows
        if max_rows is not None and len(rows) > max_rows:
            keep = set(range(max_rows // 2)) | set(
                range(len(rows) - (max_rows - max_rows // 2), len(rows))
            )
            if mark_first is not None:
                keep.add(rows.index(mark_first))
            shown = [r if i in keep else None for i, r in enumerate(rows)]
            # collapse runs of hidden rows into one ellipsis
            collapsed, prev_hidden = [], False
            for r in shown:
                if r is None and prev_hidden:
                    continue
                collapsed.append(r)
                prev_hidden = r is None
            shown = collapsed
        out = []
        for r in shown:
            if r is None:
                out.append(None)
                continue
            cells = [r.path or "<root>", r.kind, "x".join(map(str, r.shape))]
            for label in self.rtol:
                cells += self._values(r.diffs[label], label, with_abs)
            notes = sorted({d.note for d in r.diffs.values() if d.note})
            status = "ok" if r.passed else "FAIL" + (f" ({'; '.join(notes)})" if notes else "")
            if r is mark_first:
                status += " " + HERE
            out.append(cells + [status])
        return out

    def _header(self, bn: bool, with_abs: bool = True) -> list[str]:
        head = ["layer", "statistic" if bn else "kind", "shape"]
        for label in self.rtol:
            columns = self._columns(label, with_abs)
            # one pair: it is in the title / summary
            head += columns if len(self.rtol) == 1 else [f"{label}: {c}" for c in columns]
        return head + ["status"]

    def table(
        self,
        title: str | None = None,
        *,
        bn: bool = False,
        max_rows: int | None = None,
        with_abs: bool | None = None,
    ):
        """A ``rich.table.Table`` of the layers (or, ``bn=True``, the BatchNorm section).

        ``max_rows`` keeps the first and last rows and the first failing one. To fit a
        terminal, several pairs show one column each (the ratio, or max rel) and no shapes
        (``with_abs=True`` adds the others); :meth:`to_markdown` and :meth:`to_dict` always
        have everything."""
        from rich import box
        from rich.table import Table

        single = len(self.rtol) == 1
        with_abs = single if with_abs is None else with_abs
        rows = self.bn_rows if bn else self.rows
        first = self.first_divergent_bn if bn else self.first_divergent
        if title is None and single:
            title = next(iter(self.rtol))
        t = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
        head = [h.replace(" vs ", "/").replace(": ", "\n") for h in self._header(bn, with_abs)]
        keep = [i for i in range(len(head)) if i != 2 or single]  # shapes: single pair only
        widest = max((len(r.path) for r in rows), default=6)
        for i in keep:
            numeric = 3 <= i < len(head) - 1
            t.add_column(
                head[i],
                no_wrap=True,
                min_width=min(max(widest, 6), 40) if i == 0 else (8 if numeric else None),
                justify="right" if numeric else "left",
            )
        for cells in self._cells(rows, first, max_rows, with_abs):
            if cells is None:
                t.add_row("...", *[""] * (len(keep) - 1))
            else:
                style = None if cells[-1] == "ok" else "bold red"
                t.add_row(*[cells[i] for i in keep], style=style)
        return t

    def to_markdown(self, *, bn: bool = False, max_rows: int | None = None) -> str:
        rows = self.bn_rows if bn else self.rows
        first = self.first_divergent_bn if bn else self.first_divergent
        head = self._header(bn)
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for cells in self._cells(rows, first, max_rows):
            cells = ["..."] + [""] * (len(head) - 1) if cells is None else cells
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def __str__(self) -> str:
        head = self._header(False)
        body = [
            c if c is not None else ["..."] + [""] * (len(head) - 1)
            for c in self._cells(self.rows, self.first_divergent, None)
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
        return "\n".join([fmt(head), *map(fmt, body), "", self.summary()])

    def to_dict(self) -> dict[str, Any]:
        def rows(rs):
            return [
                {
                    "path": r.path,
                    "kind": r.kind,
                    "shape": list(r.shape),
                    "passed": r.passed,
                    "diffs": {
                        k: {
                            "max_abs": d.max_abs,
                            "max_rel": d.max_rel,
                            "noise": d.noise,
                            "ratio": d.ratio,
                            "passed": d.passed,
                            "nonfinite": d.nonfinite,
                            **({"note": d.note} if d.note else {}),
                        }
                        for k, d in r.diffs.items()
                    },
                }
                for r in rs
            ]

        first = self.first_divergent
        return {
            "labels": self.labels,
            "rtol": self.rtol,
            "atol": self.atol,
            "threshold": self.threshold if self.rounding_verdict else None,
            "input_shape": list(self.input_shape),
            "ok": self.ok,
            "first_divergent": None if first is None else first.path,
            "worst": {label: self.worst(label) for label in self.rtol},
            "worst_ratio": {label: self.worst_ratio(label) for label in self.rtol},
            "missing": self.missing,
            "unmatched": self.unmatched,
            "rows": rows(self.rows),
            "bn_rows": rows(self.bn_rows),
        }

    def plot(self, path: str) -> None:
        """Per-layer max |diff| of every pair against depth (execution order), log scale,
        over the band float32 rounding allows (threshold x noise); failing layers marked."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(11, 4.5))
        depth = np.arange(len(self.rows))
        tiny = np.finfo(np.float32).tiny
        for label in self.rtol:
            diffs = [r.diffs[label] for r in self.rows]
            line = ax.semilogy(
                depth, [max(d.max_abs, tiny) for d in diffs], ".-", lw=1, ms=3, label=label
            )[0]
            if self.rtol[label] is None:
                band = [max((d.noise or 0.0) * self.threshold, tiny) for d in diffs]
                ax.fill_between(depth, tiny, band, color=line.get_color(), alpha=0.15, lw=0)
            bad = [i for i, d in enumerate(diffs) if not d.passed]
            ax.semilogy(bad, [max(diffs[i].max_abs, tiny) for i in bad], "x", color="red")
        floor = min((r.diffs[k].max_abs for r in self.rows for k in r.diffs), default=1.0)
        ax.set_ylim(bottom=max(floor, 1e-12) / 10)
        ax.set_xlabel("layer (execution order)")
        ax.set_ylabel("max |difference|")
        band = f"shaded: {self.threshold:g} x float32 rounding" if self.rounding_verdict else ""
        ax.set_title(f"parity per layer ({'; '.join(filter(None, [band, 'x: FAIL']))})")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _some(paths: list[str]) -> str:
    return ", ".join(paths[:4]) + (", ..." if len(paths) > 4 else "")


def _why(label: str, d: Diff) -> str:
    if d.note:
        return f"{label}: {d.note}"
    if d.ratio is not None:
        return f"{label}: diff {d.max_abs:.2e} is {d.ratio:.1f}x the float32 rounding {d.noise:.2e}"
    return f"{label}: max rel {d.max_rel:.2e}"

"""What the frameworks actually produce: their own default layers, built and plotted.

:func:`native_defaults` builds a framework's default layer (its lowering's
``native_default``; a block's in ``backends/<framework>/defaults.py``; each imports the
framework when called) and returns its state;
:func:`plot_defaults` overlays what each installed framework draws on the catalogue's
analytic densities. Kept apart from the catalogue because it is the only part that needs
the frameworks (and matplotlib) at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xinit.backends import FRAMEWORKS, available, part
from xinit.graph import Graph

from .blocks import block_of
from .catalogue import check_framework, default_entry, lowering
from .laws import short
from .layer_names import as_spec, describe
from .render import density


def native_defaults(framework: str, layer: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Build ``framework``'s own default layer and return its state, native names and layout.

    Imports the framework now. Seeds its global generator (torch, paddle) or ``nnx.Rngs``.
    """
    spec = as_spec(layer)
    rules = part(check_framework(framework), "defaults")
    if isinstance(spec, Graph):
        module = rules.native_block(*block_of(spec), seed)
    else:  # the kind's lowering knows the framework's own layer for it
        module = lowering(framework, spec.kind).native_default(spec, seed)
    return rules.native_state(module)


def plot_defaults(
    layer: Any,
    path: str,
    *,
    frameworks: tuple[str, ...] | list[str] | None = None,
    param: str = "weight",
    seed: int = 0,
    bins: int = 120,
) -> list[dict[str, Any]]:
    """Overlaid histograms of ``param`` as each installed framework's own default layer draws
    it, with the catalogue's analytic densities; written to ``path`` (PNG, Agg backend).

    Returns one summary dict per plotted framework (measured and catalogue std).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = as_spec(layer)
    if isinstance(spec, Graph):
        raise ValueError(
            f"plot_defaults draws one layer's parameter; {spec.kind} is a block of layers: plot "
            "its layers (multihead_attention, linear, layernorm)"
        )
    installed = available()
    fws = [fw for fw in (frameworks or FRAMEWORKS) if fw in installed]
    if not fws:
        raise ImportError("no framework installed to draw from: pip install 'xinit[torch]'")
    colors = {"torch": "#ee4c2c", "paddle": "#2932e1", "flax": "#2b9348"}
    drawn = []
    for fw in fws:
        entry = default_entry(fw, spec, param)
        if entry.distribution is None or not entry.distribution.random:
            continue
        state = native_defaults(fw, spec, seed)
        values = np.concatenate([state[n].ravel() for n in entry.native_names]).astype(np.float64)
        drawn.append((fw, entry, values))
    if not drawn:
        raise ValueError(f"no framework draws {param!r} of {describe(spec)} at random")
    span = max(float(np.max(np.abs(v))) for _, _, v in drawn) * 1.05
    grid = np.linspace(-span, span, 1201)
    fig, ax = plt.subplots(figsize=(8.0, 5.6), dpi=110)
    summary = []
    for fw, entry, values in drawn:
        color = colors.get(fw)
        measured = float(values.std())
        ax.hist(
            values,
            bins=bins,
            range=(-span, span),
            density=True,
            alpha=0.35,
            color=color,
            label=f"{fw} measured (n={values.size}, std {measured:.4g})",
        )
        ax.plot(
            grid,
            density(entry.distribution, grid),
            color=color,
            lw=1.6,
            label=f"{fw} catalogue {short(entry.distribution)}, std {entry.std:.4g}",
        )
        summary.append(
            {"framework": fw, "measured_std": measured, "std": entry.std, "n": int(values.size)}
        )
    ax.set_title(f"default {param} of {describe(spec)}: native layers vs catalogue")
    ax.set_xlabel(f"{param} value")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return summary


__all__ = ["native_defaults", "plot_defaults"]

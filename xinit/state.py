"""Neutral state: every parameter and buffer of an xinit-built module as numpy, by neutral path.

The neutral state of a module is ``{dotted path: numpy array}`` with PyTorch's names and
layout (``layer1.0.bn1.running_mean``, Conv ``(out, in/g, *k)``, Linear ``(out, in)``),
whatever framework the module lives in. Names and layouts are looked up from the module's
spec (each :class:`~xinit.layers.ParamSpec`'s layer kind and role), never guessed from name
suffixes, and the adapters translate: Paddle's Linear weight ``(in, out)`` and BatchNorm
``_mean``/``_variance``; Flax's ``kernel`` (HWIO / ``(*k, in, out/g)``), ``scale``,
``mean``/``var``. Dtypes are kept as the module holds them, so moves are bit-exact.

**The num_batches_tracked rule.** PyTorch's BatchNorm counts its training steps in an
int64 buffer ``num_batches_tracked``; Paddle and Flax keep no such counter. So:

* the neutral state of a Paddle or Flax module has no ``num_batches_tracked`` entries;
* loading a state that has them into a module that lacks them is not an error: the
  entries are reported as ``skipped`` (the counter has nowhere to go);
* loading a state that lacks them into a module that has them is not an error either: the
  module keeps its own counter (0 for a freshly built module), reported as ``kept``.

Every other entry moves bit-exactly in all six directions between the three frameworks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import kinds
from .blocks import join, param_specs
from .errors import ArgumentError, XinitError
from .layers import Layer, ParamSpec
from .native import layers_of, param_table
from .parammap import Extras, ParamMap

SHOWN = 25  # entries of each list shown in an error message (the attributes hold all)


class StateError(XinitError, ValueError):
    """A state does not fit a module or spec: lists every missing, unexpected and
    mismatched entry at once."""

    def __init__(
        self,
        what: str,
        *,
        missing: list[str] = (),
        unexpected: list[str] = (),
        mismatched: list[str] = (),
        hint: str = "",
    ):
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.mismatched = list(mismatched)
        lines = [what]
        for title, keys in (
            ("missing", self.missing),
            ("unexpected", self.unexpected),
            ("shape/dtype mismatch", self.mismatched),
        ):
            if keys:
                lines.append(f"  {len(keys)} {title}:")
                lines += [f"    {k}" for k in keys[:SHOWN]]
                if len(keys) > SHOWN:
                    attr = "mismatched" if title.startswith("shape") else title
                    lines.append(
                        f"    ... and {len(keys) - SHOWN} more (all in the error's .{attr})"
                    )
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))


@dataclass
class LoadReport:
    """What :func:`load_state_dict` did (lists of neutral paths)."""

    loaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # optional, absent from the state: unchanged
    skipped: list[str] = field(default_factory=list)  # in the state, absent from the module
    missing: list[str] = field(default_factory=list)  # only when strict=False
    unexpected: list[str] = field(default_factory=list)  # only when strict=False
    renamed: dict[str, str] = field(default_factory=dict)  # transfer's name map: new -> old

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} loaded"]
        for name in ("kept", "skipped", "missing", "unexpected", "renamed"):
            n = len(getattr(self, name))
            if n:
                parts.append(f"{n} {name}")
        return ", ".join(parts)


# ---- conventions: whose names and layouts a state or checkpoint uses ----------------------
def layout_conventions() -> tuple[str, ...]:
    """``"neutral"`` (xinit's: PyTorch's names and layout) and every framework's."""
    from xinit.backends import FRAMEWORKS

    return ("neutral", *FRAMEWORKS)


def param_maps(convention: str) -> Callable[[Layer], ParamMap]:
    """Layer spec -> parameter map in ``convention`` (without importing any framework)."""
    from xinit.backends import FRAMEWORKS, part
    from xinit.backends.registry import neutral_map

    if convention == "neutral":
        return neutral_map
    if convention not in FRAMEWORKS:
        raise ArgumentError(f"unknown convention {convention!r}; accepted: {layout_conventions()}")
    return part(convention, "lowerings").REGISTRY.param_map


def extra_maps(convention: str) -> Callable[[Layer], Extras]:
    """Layer spec -> the extra native tensors (second names, constants) ``convention``'s
    checkpoints hold beside the parameter map's leaves (:class:`xinit.parammap.Extra`)."""
    from xinit.backends import part

    if convention == "neutral":
        return lambda layer: {}
    param_maps(convention)  # checks the name
    return part(convention, "lowerings").REGISTRY.extras


def is_optional(ps: ParamSpec) -> bool:
    """Whether a framework may keep no counterpart of ``ps`` (``num_batches_tracked``)."""
    return kinds.is_optional(ps.kind, ps.name)


# ---- helpers -----------------------------------------------------------------------------
def spec_of(module: Any):
    spec = getattr(module, "_xinit_spec", None)
    if spec is None:
        raise TypeError(
            f"{type(module).__name__} was not built by xinit.build (it carries no spec); "
            "build it with xinit.build(spec, backend) or use xinit.port on its raw state"
        )
    return spec


def as_numpy(value: Any) -> np.ndarray:
    """A numpy array from a numpy array, a torch/paddle tensor or a jax array (a copy);
    bfloat16, which numpy lacks, is widened exactly to float32 (as checkpoint files are)."""
    if isinstance(value, np.ndarray):
        return value
    bf16 = str(getattr(value, "dtype", "")).endswith("bfloat16")
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch
        value = value.detach().cpu()
        return (value.float() if bf16 else value).numpy()
    if hasattr(value, "numpy") and hasattr(value, "place"):  # paddle
        return np.array((value.astype("float32") if bf16 else value).numpy())
    array = np.asarray(value)
    return array.astype(np.float32) if array.dtype.name == "bfloat16" else array


def _dtype_ok(array: np.ndarray, dtype: str) -> bool:
    target = np.dtype(dtype)
    if array.dtype == target:
        return True
    kind = {"f": "float", "i": "int", "u": "int", "b": "bool"}
    return kind.get(array.dtype.kind) == kind.get(target.kind)


def _describe(array: np.ndarray) -> str:
    return f"{tuple(array.shape)} {array.dtype}"


def shape_hint(ps: ParamSpec, shape: tuple[int, ...]) -> str:
    """The owning layer's reason why a tensor of ``shape`` does not fit ``ps`` (a recurrent
    layer names a wrong gate count); "" when it has none."""
    explain = getattr(ps.layer, "shape_hint", None)
    return explain(ps.name, tuple(shape)) if explain is not None else ""


# ---- the public functions ---------------------------------------------------------------
def state_dict(module: Any) -> dict[str, np.ndarray]:
    """Every parameter and buffer of ``module`` (built by xinit or not: a native model is
    read layer by layer, see :mod:`xinit.native`), by neutral path, as numpy in the neutral
    layout, in the spec's (PyTorch's state_dict) order, dtypes preserved.

    The arrays are copies: later changes to the module do not reach them. Entries the
    framework does not keep (``num_batches_tracked`` in Paddle and Flax) are absent.
    """
    return _state(module, copy=True)


def _state(module: Any, copy: bool) -> dict[str, np.ndarray]:
    """The neutral state; ``copy=False`` may return views of the module's memory (for a
    transfer that copies them straight into another module: one copy fewer per tensor)."""
    from xinit.backends import backend_of

    adapter = backend_of(module)
    out: dict[str, np.ndarray] = {}
    for path, native, layer in layers_of(module, adapter):
        pmap = adapter.param_map(layer)
        for ps in layer.params():
            leaves = pmap[ps.name]
            if not leaves:
                continue
            array = adapter.read_param(native, leaves, ps.shape, view=not copy)
            out[join(path, ps.name)] = np.array(array, copy=True, order="C") if copy else array
    return out


def check_state(
    state: Mapping[str, Any], spec, has=lambda ps: True, what: str = "state"
) -> tuple[dict, LoadReport, list[str]]:
    """Account for ``state`` (neutral) against ``spec`` (a spec, or a ``{path: ParamSpec}``
    table): returns (entries to load as {path: (ParamSpec, array)}, the report, the
    mismatched entries described).

    ``has(ps)`` says whether the destination keeps entry ``ps``.
    """
    params = spec if isinstance(spec, Mapping) else param_specs(spec)
    report = LoadReport()
    todo: dict[str, tuple[ParamSpec, np.ndarray]] = {}
    mismatched: list[str] = []
    for path, ps in params.items():
        present = has(ps)
        if path not in state:
            if not present:
                continue
            if is_optional(ps):
                report.kept.append(path)
            else:
                report.missing.append(path)
            continue
        if not present:
            report.skipped.append(path)
            continue
        array = as_numpy(state[path])
        if tuple(array.shape) != tuple(ps.shape) or not _dtype_ok(array, ps.dtype):
            mismatched.append(
                f"{path}: {what} has {_describe(array)}, expected {tuple(ps.shape)} {ps.dtype}"
                f"{shape_hint(ps, array.shape)}"
            )
            continue
        todo[path] = (ps, array)
    report.unexpected = [k for k in state if k not in params]
    return todo, report, mismatched


def load_state_dict(module: Any, state: Mapping[str, Any], *, strict: bool = True) -> LoadReport:
    """Load a neutral ``state`` (as :func:`state_dict` returns) into ``module`` (built by xinit
    or a native model read layer by layer).

    With ``strict=True`` every entry of the module must be in ``state`` and every entry of
    ``state`` must belong to the spec; otherwise a :class:`StateError` lists all missing,
    unexpected and mismatched entries and nothing is changed. ``strict=False`` tolerates
    missing and unexpected entries (reported), never a wrong shape or dtype kind: nothing
    is reshaped or dropped silently. Same-kind dtypes are cast to the module's (float64 to
    float32); ``num_batches_tracked`` follows the rule in this module's docstring.
    """
    from xinit.backends import backend_of

    adapter = backend_of(module)
    layers = layers_of(module, adapter)
    todo, report, mismatched = check_state(
        state, param_table(layers), has=lambda ps: bool(adapter.param_map(ps.layer)[ps.name])
    )
    if mismatched or (strict and (report.missing or report.unexpected)):
        raise StateError(
            f"cannot load the state into the {adapter.name} module:",
            missing=report.missing if strict else (),
            unexpected=report.unexpected if strict else (),
            mismatched=mismatched,
            hint="(strict=False tolerates missing and unexpected entries, never mismatches)"
            if not mismatched
            else "",
        )
    for path, native, layer in layers:
        pmap = adapter.param_map(layer)
        for ps in layer.params():
            entry = todo.get(join(path, ps.name))
            if entry is None:
                continue
            array = entry[1].astype(ps.dtype, copy=False)
            adapter.write_param(native, pmap[ps.name], array)  # where the module's tensors are
            report.loaded.append(join(path, ps.name))
    return report


def transfer(src: Any, dst: Any, *, strict: bool = True, name_map: Any = None) -> LoadReport:
    """Copy every parameter and buffer (BatchNorm running statistics included) from ``src``
    to ``dst``: modules of any two frameworks, built by xinit or not (a native model is read
    layer by layer through the lowerings, see :mod:`xinit.native`).

    Layouts and names are converted from the layer kinds, never guessed from shapes; values
    move bit-exactly. Where the two trees name layers differently, ``name_map`` renames the
    source's neutral paths into the destination's (a :class:`~xinit.namemap.NameMap`, or
    what it accepts: prefix dict, regex rules, function, JSON file); the report lists what it
    renamed. Accounting is strict: every missing, unexpected and mismatched entry is listed
    at once and nothing is loaded half-way. ``num_batches_tracked``: see this module's
    docstring (skipped into Paddle/Flax; kept by a PyTorch destination when the source has
    none).
    """
    from .namemap import NameMap

    src_spec, dst_spec = getattr(src, "_xinit_spec", None), getattr(dst, "_xinit_spec", None)
    names = NameMap(name_map)
    built_alike = src_spec is not None and (src_spec is dst_spec or src_spec == dst_spec)
    state = _state(src, copy=False)
    renamed: dict[str, str] = {}
    if names:
        state, dropped, renamed = names.rename(state)
        if dropped and strict:
            raise StateError(
                "transfer: the name map drops source entries (strict=True):", unexpected=dropped
            )
    elif not built_alike and src_spec is not None and dst_spec is not None:
        a, b = param_specs(src_spec), param_specs(dst_spec)
        shapes_a = {k: v.shape for k, v in a.items()}
        shapes_b = {k: v.shape for k, v in b.items()}
        if shapes_a != shapes_b:
            raise StateError(
                "transfer: the two modules were built from different specs:",
                missing=[k for k in b if k not in a],
                unexpected=[k for k in a if k not in b],
                mismatched=[
                    f"{k}: source {shapes_a[k]}, destination {shapes_b[k]}"
                    for k in a
                    if k in b and shapes_a[k] != shapes_b[k]
                ],
            )
    try:
        report = load_state_dict(dst, state, strict=strict)
    except StateError as err:
        if names or built_alike:
            raise
        raise StateError(
            "transfer: the two models' entries do not correspond:",
            missing=err.missing,
            unexpected=err.unexpected,
            mismatched=err.mismatched,
            hint="(are their layers named differently? name_map= says how they correspond)",
        ) from None
    report.renamed = renamed
    return report


__all__ = [
    "state_dict",
    "load_state_dict",
    "transfer",
    "StateError",
    "LoadReport",
    "layout_conventions",
    "param_maps",
    "extra_maps",
]

"""Porting a raw checkpoint between frameworks, from the spec, strictly.

``xinit.port(checkpoint, spec, src="paddle", dst="torch")`` takes a checkpoint in one
framework's names and layout (a file, or a dict of arrays/tensors) and returns the state in
another's: every name and layout comes from the spec's layer kinds and parameter roles,
none from name suffixes. Accounting is strict: every missing, unexpected and shape- or
dtype-mismatched key is listed in one :class:`PortError`; nothing is dropped, renamed or
reshaped without the caller asking (``strip_prefix``, ``prefix_map``) or the report
saying so (``num_batches_tracked``, see :mod:`xinit.state`).

Conventions: ``"torch"``, ``"paddle"``, ``"flax"`` (a framework's own state-dict names and
layout) and ``"neutral"`` (xinit's: PyTorch's names and layout, what safetensors files hold).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import parammap
from ._port_hints import port_hint
from .blocks import join, param_specs
from .errors import ArgumentError
from .state import (
    StateError,
    _describe,
    _dtype_ok,
    as_numpy,
    extra_maps,
    is_optional,
    layout_conventions,
    param_maps,
    shape_hint,
)


class PortError(StateError):
    """A checkpoint does not fit the spec: every missing, unexpected and mismatched key."""


@dataclass
class PortReport:
    """What :func:`port` did; every key of the checkpoint is accounted for in one list."""

    src: str
    dst: str
    moved: list[tuple[str, str]] = field(default_factory=list)  # (checkpoint key, dst key)
    renamed: int = 0  # moved under a different name
    relaid: int = 0  # moved with a different layout (transposed kernel)
    stripped: list[tuple[str, str]] = field(default_factory=list)  # (original, after prefix)
    dropped: list[str] = field(default_factory=list)  # by an explicit prefix_map entry -> None
    filled: list[str] = field(default_factory=list)  # dst keys absent from src: start value
    skipped: list[str] = field(default_factory=list)  # src keys dst keeps no counterpart of
    missing: list[str] = field(default_factory=list)  # strict=False only
    unexpected: list[str] = field(default_factory=list)  # strict=False only
    square: int = 0  # transposed weights whose shape fits either layout: src decided alone
    converted: list[str] = field(default_factory=list)  # widened: "key: float16 -> float32"
    notes: list[str] = field(default_factory=list)  # what reading changed (wrappers, bf16)
    extras_read: list[str] = field(default_factory=list)  # second names / constants checked
    extras_written: int = 0  # second names and constants written for dst's own loader

    def summary(self) -> str:
        lines = [
            f"{len(self.moved)} tensors moved {self.src} -> {self.dst} "
            f"({self.renamed} renamed, {self.relaid} transposed)"
        ]
        lines.extend(self.notes)
        if self.stripped:
            lines.append(f"{len(self.stripped)} keys had a prefix stripped or mapped")
        if self.square:
            s = "" if self.square == 1 else "s"
            lines.append(
                f"{self.square} square weight{s} transposed on the strength of src={self.src} "
                "(no shape can tell; if the outputs differ, check src)"
            )
        if self.extras_read:
            lines.append(
                f"{len(self.extras_read)} {self.src} keys checked as second names of tensors "
                "or as constants (e.g. Paddle's RNN weights, saved twice)"
            )
        if self.extras_written:
            lines.append(
                f"{self.extras_written} {self.dst} keys written as second names or constants, "
                f"as {self.dst} saves them"
            )
        if self.converted:
            shown = ", ".join(self.converted[:3]) + (", ..." if len(self.converted) > 3 else "")
            lines.append(f"{len(self.converted)} converted to the model's dtype: {shown}")
        for title, keys in (
            ("dropped by prefix_map", self.dropped),
            ("filled with their start value (absent from the source)", self.filled),
            (f"skipped ({self.dst} keeps no counterpart)", self.skipped),
            ("missing", self.missing),
            ("unexpected", self.unexpected),
        ):
            if keys:
                shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
                lines.append(f"{len(keys)} {title}: {shown}")
        return "\n".join(lines)


class PortedState(dict):
    """The ported state (``{dst name: numpy array}``), with its :class:`PortReport`."""

    report: PortReport


def _rename(
    keys: Iterable[str],
    strip_prefix: str | Iterable[str] | None,
    prefix_map: Mapping[str, str | None] | None,
    report: PortReport,
) -> dict[str, str]:
    """Original key -> key after ``prefix_map`` (longest matching prefix) then
    ``strip_prefix``; keys mapped to None are recorded as dropped."""
    strips = (strip_prefix,) if isinstance(strip_prefix, str) else tuple(strip_prefix or ())
    pmap = dict(prefix_map or {})
    out: dict[str, str] = {}
    for key in keys:
        new = key
        match = max((p for p in pmap if key.startswith(p)), key=len, default=None)
        if match is not None:
            if pmap[match] is None:
                report.dropped.append(key)
                continue
            new = pmap[match] + key[len(match) :]
        for p in strips:
            if p and new.startswith(p):
                new = new[len(p) :]
                break
        if new != key:
            report.stripped.append((key, new))
        out[key] = new
    clashes = [n for n, c in Counter(out.values()).items() if c > 1]
    if clashes:
        raise PortError(
            "port: after strip_prefix/prefix_map several checkpoint keys share a name: "
            + ", ".join(
                f"{n} <- {sorted(k for k, v in out.items() if v == n)}" for n in clashes[:5]
            )
        )
    return out


def _layout_hint(array: np.ndarray, ps, src: str) -> str:
    """Name the conventions whose layout the array has, when it is another's than src's."""
    fits = []
    for name in layout_conventions()[1:]:
        try:
            leaves = param_maps(name)(ps.layer)[ps.name]
        except TypeError:  # a framework with no lowering of this kind
            continue
        fit = len(leaves) == 1 and leaves[0].native_shape(ps.shape) == tuple(array.shape)
        if name != src and fit:
            fits.append(name)
    if not fits:
        return ""
    return f" (that is {' and '.join(fits)} layout: is src={fits[0]!r}?)"


def _shape_blind(src_leaves, dst_leaves, shape) -> bool:
    """Whether a relaid tensor's shape is the same in both layouts (a square Linear weight
    between torch and paddle): then only ``src`` says it must be transposed."""
    if len(src_leaves) != 1 or len(dst_leaves) != 1:
        return False
    return src_leaves[0].native_shape(shape) == dst_leaves[0].native_shape(shape)


def _layouts(leaves) -> tuple:
    return tuple((leaf.perm, leaf.part, leaf.shape, leaf.into) for leaf in leaves)


def _resolve_extra(extras, name: str):
    """Follow second names from extra ``name``: (the leaf name it ends at, None) or (the
    extra's name, the constant Extra it ends at)."""
    seen = set()
    while name in extras and extras[name].of is not None and name not in seen:
        seen.add(name)
        name = extras[name].of
    extra = extras.get(name)
    return (name, extra) if extra is not None and extra.of is None else (name, None)


def _read_extras(layers, extras_of, data, origin, expected, report, mismatched) -> None:
    """Account for the checkpoint's extra keys (:class:`xinit.parammap.Extra`): a second
    name stands in for its tensor when that is absent and must equal it when present; a
    constant must hold its value. Each is expected (never unexpected), and recorded."""
    for owner, layer in layers.items():
        extras = extras_of(layer)
        for name in extras:
            key = join(owner, name)
            expected[key] = key
            if key not in data:
                continue
            array = data[key]
            target, const = _resolve_extra(extras, name)
            report.extras_read.append(origin[key])
            if const is not None:
                if tuple(array.shape) != tuple(const.shape) or np.any(array != const.fill):
                    mismatched.append(
                        f"{origin[key]}: checkpoint has {_describe(array)} (max |x| "
                        f"{float(np.max(np.abs(array), initial=0)):.3g}); {report.src} keeps it "
                        f"as the constant {const.fill:g} of shape {const.shape} (a parameter "
                        f"{type(layer).__name__} does not have: bias={getattr(layer, 'bias', '?')})"
                    )
                continue
            canon = join(owner, target)
            if canon not in data:
                data[canon], origin[canon] = array, origin[key]
            elif data[canon].shape != array.shape or not np.array_equal(data[canon], array):
                mismatched.append(
                    f"{origin[key]} and {origin[canon]} name one {report.src} tensor but differ: "
                    f"{_describe(array)} vs {_describe(data[canon])}"
                    + ("" if data[canon].shape != array.shape else ", different values")
                )


def _write_extras(layers, extras_of, out, report) -> None:
    """Write dst's extra keys: each second name as its tensor, each constant filled."""
    for owner, layer in layers.items():
        extras = extras_of(layer)
        for name in extras:
            target, const = _resolve_extra(extras, name)
            key = join(owner, name)
            if const is not None:
                out[key] = np.full(const.shape, const.fill, np.float32)
            elif join(owner, target) in out:
                out[key] = out[join(owner, target)]
            else:
                continue
            report.extras_written += 1


MODEL_FACTOR = 4  # a file may hold the model's bytes a few times (Adam's moments: 3x)


def _load(checkpoint, src: str | None, max_bytes: int | None = None, params=None):
    if isinstance(checkpoint, (str, os.PathLike)):
        from .checkpoints import (
            CONVENTION,
            MIN_LIMIT,
            default_max_bytes,
            detect_format,
            load_checkpoint,
        )

        fmt = detect_format(checkpoint)
        why = "max_bytes"
        if max_bytes is None and params:  # the target model bounds a sane file too
            model = sum(ps.numel * np.dtype(ps.dtype).itemsize for ps in params.values())
            by_model = MODEL_FACTOR * model + MIN_LIMIT
            if by_model < default_max_bytes(checkpoint):
                max_bytes, why = by_model, f"{MODEL_FACTOR}x the model's {model:,} bytes"
            else:
                why = ""
        loaded = load_checkpoint(
            checkpoint, max_bytes=max_bytes, unwrap_wrappers=True, limit_reason=why
        )
        return loaded, src or CONVENTION[fmt]
    if not isinstance(checkpoint, Mapping):
        raise TypeError(
            f"checkpoint must be a file path or a dict of arrays; got {type(checkpoint).__name__}"
        )
    if src is None:
        raise ArgumentError("port: src= (the checkpoint's convention) is needed for a dict")
    from .checkpoints import LoadedCheckpoint, check_plain, flatten, unwrap

    notes = list(getattr(checkpoint, "notes", []))
    if src != "flax":
        checkpoint = unwrap(checkpoint, notes)
    out = LoadedCheckpoint({k: as_numpy(v) for k, v in flatten(checkpoint).items()}, notes=notes)
    for key, array in out.items():
        check_plain(array, key)
    return out, src


def _paddleocr_path(checkpoint):
    """A PaddleOCR path made the weights file (``best_accuracy`` -> ``.pdparams``), with the
    report lines about its sidecar files; a ``.pdopt``/``.states`` is an error saying so."""
    if not isinstance(checkpoint, (str, os.PathLike)):
        return checkpoint, []
    from .checkpoints import paddleocr

    why = paddleocr.not_weights(checkpoint)
    if why is not None:
        raise PortError(f"port: {why}")
    notes = []
    path = os.fspath(checkpoint)
    if not os.path.exists(path) and os.path.isfile(path + ".pdparams"):
        notes.append(
            f"read {os.path.basename(path)}.pdparams (PaddleOCR names the checkpoint "
            "without its extension)"
        )
        path += ".pdparams"
        checkpoint = path
    return checkpoint, notes + paddleocr.sidecars(path)


def _paddleocr_prefixes(raw, params, submodel, strip_prefix, prefix_map, report: PortReport):
    """``prefix_map`` extended with PaddleOCR's distillation submodel and MultiHead choices
    (:func:`xinit.checkpoints.paddleocr.select`), each a report line; left to the caller
    when it maps prefixes itself and names no ``submodel``."""
    if submodel is None and (strip_prefix is not None or prefix_map is not None):
        return prefix_map
    from .checkpoints import paddleocr

    chosen, notes = paddleocr.select(raw, params, submodel)
    report.notes.extend(notes)
    if not chosen:
        return prefix_map
    return {**chosen, **(prefix_map or {})}


DATA_PARALLEL_PREFIX = "module."  # torch.nn.DataParallel / DistributedDataParallel


def _data_parallel(raw: Mapping[str, Any], params: Mapping[str, Any], report) -> str | None:
    """``"module."`` when every checkpoint key has DataParallel's prefix and no parameter
    of the spec does (then it is stripped, with a report line); else None."""
    if not raw or not all(k.startswith(DATA_PARALLEL_PREFIX) for k in raw):
        return None
    if any(p.startswith(DATA_PARALLEL_PREFIX) for p in params):
        return None
    report.notes.append(
        f"stripped DataParallel's {DATA_PARALLEL_PREFIX!r} prefix from all {len(raw)} keys"
    )
    return DATA_PARALLEL_PREFIX


def _param_table(model) -> dict:
    """Neutral path -> ParamSpec of a spec, a zoo model name or a native model (read layer by
    layer through the lowerings: the model xinit did not build defines the names)."""
    from .blocks import is_spec

    if isinstance(model, str):
        from . import models

        model = models.get(model)
    if is_spec(model):
        return param_specs(model)
    from .native import param_table, read_layers

    return param_table(read_layers(model))


def port(
    checkpoint: str | os.PathLike | Mapping[str, Any],
    spec,
    *,
    src: str | None = None,
    dst: str,
    strip_prefix: str | Iterable[str] | None = None,
    prefix_map: Mapping[str, str | None] | None = None,
    strict: bool = True,
    progress: Callable[[int, int], None] | None = None,
    max_bytes: int | None = None,
    submodel: str | None = None,
) -> PortedState:
    """Convert ``checkpoint`` (a file path, or ``{name: array or tensor}``) from convention
    ``src`` to convention ``dst`` (``"torch"``, ``"paddle"``, ``"flax"`` or ``"neutral"``)
    for ``spec`` (a spec, a zoo model name, or a native model of any framework, read layer by
    layer: its names define the paths), returning ``{dst name: numpy array}`` in the spec's
    order with a ``.report`` (:class:`PortReport`).

    ``src`` defaults to the file format's convention (``.pdparams`` paddle, ``.pt`` torch,
    ``.safetensors`` neutral, ``.msgpack`` flax). ``strip_prefix`` removes a prefix (or the
    first matching of several) from the keys that have it, e.g. ``"backbone."``;
    ``prefix_map`` maps prefixes explicitly, ``{"Student.backbone.": "", "Student.head.":
    None}`` (None drops those keys, listed in the report). With ``strict=True`` any missing
    or unexpected key raises :class:`PortError` listing all of them; wrong shapes and dtype
    kinds always do. ``progress(done, total)`` is called as tensors are converted.

    Training wrappers are unwrapped (``{"state_dict": ..., "epoch": 3}``, ``{"model":
    ...}``) and DataParallel's ``module.`` prefix is stripped when every key has it, each
    with a report line. Floats of lower precision than the model's (float16; bfloat16 is
    widened to float32 on reading) are converted to the model's dtype and listed; higher
    precision is kept as the checkpoint has it.
    ``max_bytes`` bounds what reading a file may allocate (see
    :func:`xinit.checkpoints.load_checkpoint`).

    PaddleOCR's training checkpoints (:mod:`xinit.checkpoints.paddleocr`): a distillation
    checkpoint keeps ``submodel`` (``"Student"``; by default the only one), the others
    dropped and listed; a MultiHead's training-only SAR/NRTR branches are dropped and listed
    when the spec has only the CTC branch; ``.pdopt``/``.states`` files beside the
    checkpoint get a report line, and a path without its ``.pdparams`` extension (as
    PaddleOCR's configs write ``pretrained_model``) is read with it.
    """
    params = _param_table(spec)
    checkpoint, ocr_notes = _paddleocr_path(checkpoint)
    raw, src = _load(checkpoint, src, max_bytes, params)
    src_maps, dst_maps = param_maps(src), param_maps(dst)
    report = PortReport(src=src, dst=dst, notes=[*raw.notes, *ocr_notes])
    prefix_map = _paddleocr_prefixes(raw, params, submodel, strip_prefix, prefix_map, report)
    if strip_prefix is None and prefix_map is None:
        strip_prefix = _data_parallel(raw, params, report)
    names = _rename(raw, strip_prefix, prefix_map, report)
    data = {names[k]: raw[k] for k in raw if k in names}
    origin = {v: k for k, v in names.items()}
    expected: dict[str, str] = {}  # src name -> neutral path
    missing, mismatched, todo = [], [], []
    layers = {ps.owner(path): ps.layer for path, ps in params.items()}
    _read_extras(layers, extra_maps(src), data, origin, expected, report, mismatched)
    for path, ps in params.items():
        owner = ps.owner(path)
        src_leaves = src_maps(ps.layer)[ps.name]
        dst_leaves = dst_maps(ps.layer)[ps.name]
        snames = [join(owner, leaf.name) for leaf in src_leaves]
        for sname in snames:
            expected[sname] = path
        absent = [n for n in snames if n not in data]
        if not snames or absent:
            if not dst_leaves:
                continue
            if is_optional(ps):
                todo.append((ps, owner, src_leaves, None, dst_leaves))  # filled: fresh value
            else:
                missing.extend(absent)
            continue
        bad = []
        for sname, leaf in zip(snames, src_leaves):
            array, want = data[sname], leaf.native_shape(ps.shape)
            if tuple(array.shape) != want or not _dtype_ok(array, ps.dtype):
                hint = ""
                if tuple(array.shape) != want and len(src_leaves) == 1:
                    hint = _layout_hint(array, ps, src)
                    if not leaf.relaid:
                        hint += shape_hint(ps, array.shape)
                bad.append(
                    f"{origin[sname]}: checkpoint has {_describe(array)}, "
                    f"{src} layout of {path} is {want} {ps.dtype}{hint}"
                )
        if bad:
            mismatched.extend(bad)
            continue
        if not dst_leaves:
            report.skipped.extend(origin[n] for n in snames)
            continue
        arrays = {leaf.name: data[n] for n, leaf in zip(snames, src_leaves)}
        todo.append((ps, owner, src_leaves, arrays, dst_leaves))
    unexpected = [origin[k] for k in data if k not in expected]
    if mismatched or (strict and (missing or unexpected)):
        raise PortError(
            f"port: the {src} checkpoint does not fit the spec "
            f"({len(params)} entries, {len(data)} checkpoint keys):",
            missing=missing if strict else (),
            unexpected=unexpected if strict else (),
            mismatched=mismatched,
            hint=port_hint(unexpected, expected, params, src),
        )
    report.missing, report.unexpected = ([], []) if strict else (missing, unexpected)

    out = PortedState()
    for i, (ps, owner, src_leaves, arrays, dst_leaves) in enumerate(todo):
        dnames = [join(owner, leaf.name) for leaf in dst_leaves]
        if arrays is None:  # 0 (num_batches_tracked), or the value the layer computes
            start = ps.layer.buffer_value(ps.name) if ps.layer is not None else None
            for dname, leaf in zip(dnames, dst_leaves):
                if start is None:
                    out[dname] = np.zeros(leaf.native_shape(ps.shape), ps.dtype)
                else:
                    out[dname] = np.array(parammap.piece(np.asarray(start, ps.dtype), leaf))
                report.filled.append(dname)
        else:
            for leaf in src_leaves:
                array = arrays[leaf.name]
                target = np.dtype(ps.dtype)
                if array.dtype.kind == target.kind == "f" and array.itemsize < target.itemsize:
                    key = origin[join(owner, leaf.name)]
                    report.converted.append(f"{key}: {array.dtype} -> {ps.dtype}")
                    arrays[leaf.name] = array.astype(ps.dtype)
            neutral = parammap.to_neutral(arrays, src_leaves, ps.shape)
            for dname, leaf in zip(dnames, dst_leaves):
                parammap.pack(out, dname, leaf, np.array(parammap.piece(neutral, leaf)))
            origins = "+".join(origin[join(owner, leaf.name)] for leaf in src_leaves)
            report.moved.append((origins, "+".join(dnames)))
            report.renamed += [origin[join(owner, leaf.name)] for leaf in src_leaves] != dnames
            relaid = _layouts(src_leaves) != _layouts(dst_leaves)
            report.relaid += relaid
            report.square += relaid and _shape_blind(src_leaves, dst_leaves, ps.shape)
        if progress is not None:
            progress(i + 1, len(todo))
    _write_extras(layers, extra_maps(dst), out, report)
    out.report = report
    return out


__all__ = ["port", "PortError", "PortReport", "PortedState"]

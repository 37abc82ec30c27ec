"""PyTorch's checkpoint format: ``torch.save`` of a state dict (``.pt``, ``.pth``, ``.bin``).

Read with ``torch.load(weights_only=True)``, which refuses pickles that would run code, after
the zip's declared record sizes are checked against the read budget (a deflated record can
inflate a small file to gigabytes). Importing this module imports nothing heavy; ``read``
and ``write`` import torch.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".pt", ".pth", ".bin")
MAX_DEPTH = 64  # nesting of dicts (real checkpoints have 1 to 3 levels)


def _to_numpy(obj: Any, path: Path, widened: list[str], depth: int = 0) -> Any:
    """Tensors (at any depth of nested dicts) as numpy arrays, bfloat16 widened exactly to
    float32; everything else unchanged."""
    import torch

    from xinit.checkpoints import CheckpointError

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            widened.append("")
            t = t.float()
        return t.numpy()
    if isinstance(obj, Mapping):
        if depth >= MAX_DEPTH:
            raise CheckpointError(f"{path}: dicts nested deeper than {MAX_DEPTH} levels")
        return {k: _to_numpy(v, path, widened, depth + 1) for k, v in obj.items()}
    return obj


def _check_records(path: Path, budget) -> None:
    """Charge the zip's declared uncompressed sizes to the budget before torch reads any."""
    if budget is None or not zipfile.is_zipfile(path):
        return
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            budget.charge(info.file_size, f"record {info.filename} ({info.file_size:,} bytes)")


def _weights_only_cause(err: Exception) -> tuple[str, bool]:
    """torch's own reason for refusing a file, without its advice to load it unsafely, and
    whether the reason is a global it would not build (unsafe) or an unreadable opcode."""
    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    tail = text.split("WeightsUnpickler error:", 1)
    if len(tail) == 2:
        lines = [ln.strip() for ln in tail[1].splitlines() if ln.strip()] or lines
    lines = [ln for ln in lines if "weights_only" not in ln or "GLOBAL" in ln.upper()]
    detail = next((ln for ln in lines if "GLOBAL" in ln.upper()), lines[0] if lines else "")
    return detail, "GLOBAL" in detail.upper()


def read(path: Path, budget=None, notes: list[str] | None = None) -> Any:
    """The object ``torch.load(weights_only=True)`` reads from ``path``, tensors as arrays."""
    import torch

    from xinit.checkpoints import CheckpointError, UnsafeCheckpointError

    _check_records(path, budget)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        detail, unsafe = _weights_only_cause(err)
        if unsafe:
            raise UnsafeCheckpointError(
                f"{path}: refused by torch.load(weights_only=True): {detail}"
            ) from None
        raise CheckpointError(
            f"{path}: torch.load(weights_only=True) cannot read this pickle: {detail} "
            "(saved with an unusual pickle protocol? re-save it with torch.save's defaults)"
        ) from None
    widened: list[str] = []
    out = _to_numpy(obj, path, widened)
    if widened and notes is not None:
        notes.append(f"{len(widened)} bfloat16 tensors widened exactly to float32")
    return out


def write(state: dict[str, np.ndarray], f) -> None:
    """``torch.save`` of an ordered state dict of CPU tensors."""
    from collections import OrderedDict

    import torch

    torch.save(OrderedDict((k, torch.from_numpy(v.copy())) for k, v in state.items()), f)

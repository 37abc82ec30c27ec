"""PyTorch's checkpoint format: ``torch.save`` of a state dict (``.pt``, ``.pth``, ``.bin``).

Read with ``torch.load(weights_only=True)``, which refuses pickles that would run code.
Importing this module imports nothing heavy; ``read`` and ``write`` import torch.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SUFFIXES = (".pt", ".pth", ".bin")


def _to_numpy(obj: Any, path: Path) -> Any:
    """Tensors (at any depth of nested dicts) as numpy arrays; everything else unchanged."""
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.dtype == torch.bfloat16:
            from xinit.checkpoints import CheckpointError

            raise CheckpointError(
                f"{path}: bfloat16 tensors have no numpy dtype; convert the checkpoint first"
            )
        return t.numpy()
    if isinstance(obj, Mapping):
        return {k: _to_numpy(v, path) for k, v in obj.items()}
    return obj


def read(path: Path) -> Any:
    """The object ``torch.load(weights_only=True)`` reads from ``path``, tensors as arrays."""
    import torch

    from xinit.checkpoints import UnsafeCheckpointError

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "GLOBAL" in ln.upper()), lines[0] if lines else "")
        raise UnsafeCheckpointError(
            f"{path}: refused by torch.load(weights_only=True): {detail}"
        ) from None
    return _to_numpy(obj, path)


def write(state: dict[str, np.ndarray], f) -> None:
    """``torch.save`` of an ordered state dict of CPU tensors."""
    from collections import OrderedDict

    import torch

    torch.save(OrderedDict((k, torch.from_numpy(v.copy())) for k, v in state.items()), f)

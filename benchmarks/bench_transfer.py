"""``xinit.transfer`` of ResNet-50 weights between backends vs a numpy memcpy of the bytes."""

from __future__ import annotations

import numpy as np

import xinit
from xinit.blocks import param_specs

from .harness import Result, interleaved


def run(repeats: int = 5) -> list[Result]:
    spec = xinit.models.resnet50()
    nbytes = sum(p.numel * (8 if p.dtype == "int64" else 4) for p in param_specs(spec).values())
    src_buf = np.ones(nbytes // 4, np.float32)
    dst_buf = np.empty_like(src_buf)
    out = []
    for a, b in (("paddle", "torch"), ("torch", "flax")):
        src, dst = xinit.build(spec, a), xinit.build(spec, b)
        tx, tn = interleaved(
            lambda s=src, d=dst: xinit.transfer(s, d), lambda: np.copyto(dst_buf, src_buf), repeats
        )
        out.append(
            Result(
                f"transfer resnet50 {a} -> {b} (bytes/s)", nbytes / tx, nbytes / tn, ">= 0.5", "B/s"
            )
        )
    return out

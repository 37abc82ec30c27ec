"""``xinit.convert`` (parity off) of torchvision ResNet-50 and ViT-B/16 into Paddle vs the
framework's own way: build the target natively and ``set_state_dict`` the converted state.

ResNet-50's native build is ``paddle.vision.models.resnet50()``; ``paddle.vision`` has no
ViT-B/16, so its native build is ``xinit.build`` of the traced spec (the nearest to "write
the class by hand", and never faster than it). Both include the target's random init.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable

import numpy as np

import xinit

from .harness import Result, interleaved


def _cpu_timed(totals: dict, side: str, fn: Callable[[], object]) -> Callable[[], None]:
    """``fn``, adding the process's CPU time (all threads) it takes to ``totals[side]``."""

    def call() -> None:
        start = time.process_time()
        fn()
        totals[side] += time.process_time() - start

    return call


def run(repeats: int = 5) -> list[Result]:
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("stub"))
    import paddle
    import torch
    import torchvision

    torch.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    out = []
    for name in ("resnet50", "vit_b_16"):
        model = getattr(torchvision.models, name)().eval()
        converted, report = xinit.convert(model, "paddle", x, parity=False)
        state = converted.state_dict()

        def native(name=name, spec=report.spec, state=state):
            if name == "resnet50":
                layer = paddle.vision.models.resnet50()
            else:
                layer = xinit.build(spec, "paddle")
            layer.set_state_dict(state)

        cpu = {"xinit": 0.0, "native": 0.0}
        tx, tn = interleaved(
            _cpu_timed(cpu, "xinit", lambda m=model: xinit.convert(m, "paddle", x, parity=False)),
            _cpu_timed(cpu, "native", native),
            repeats,
        )
        how = "paddle.vision resnet50()" if name == "resnet50" else "xinit.build of the spec"
        out.append(
            Result(
                f"convert {name} 1x3x224x224 torch -> paddle (no parity) vs native build + "
                "set_state_dict",
                tx,
                tn,
                "<= 2",
                note=f"native build: {how}; CPU time per run (all threads): "
                f"{cpu['xinit'] / (repeats + 1):.2f} s vs {cpu['native'] / (repeats + 1):.2f} s",
            )
        )
    return out

"""``xinit.build`` vs constructing the hand-written equivalent (default init included).

torch: torchvision-style ResNet-50 with its init loop; paddle: PaddleOCR's ResNet45 with
``ParamAttr(initializer=KaimingNormal())``; flax: a hand-written NNX ResNet-50.
"""

from __future__ import annotations

import sys
from pathlib import Path

import xinit

from .harness import Result, interleaved

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def run(repeats: int = 5) -> list[Result]:
    import reference_models as ref

    out = []
    import torch

    torch.set_num_threads(2)
    spec = xinit.models.resnet50()
    tx, tn = interleaved(lambda: xinit.build(spec, "torch"), ref.torch_resnet50, repeats)
    out.append(Result("build resnet50, torch", tx, tn, "<= 1.1"))

    spec45 = xinit.models.resnet45()
    tx, tn = interleaved(lambda: xinit.build(spec45, "paddle"), ref.paddle_resnet45, repeats)
    out.append(Result("build resnet45, paddle", tx, tn, "<= 1.1"))

    tx, tn = interleaved(lambda: xinit.build(spec, "flax"), ref.flax_resnet50, repeats)
    out.append(Result("build resnet50, flax", tx, tn, "<= 1.1"))
    return out

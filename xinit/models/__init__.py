"""The zoo: functions returning specs, structured and named like the models they mirror
(PaddleOCR's recognisers and ``from_config`` in the :mod:`xinit.models.paddleocr` family)."""

from __future__ import annotations

from ..errors import UnknownNameError
from .centernet import centernet_resnet
from .crnn import crnn
from .gpt2 import gpt2, gpt2_1b
from .lenet import lenet
from .paddleocr import (
    abinet,
    dbnet_pplcnetv3,
    ppocr_cls,
    ppocrv2_rec,
    ppocrv3_det,
    ppocrv4_rec,
    ppocrv4_server_det,
    ppocrv4_server_rec,
    svtr_tiny,
    visionlan,
)
from .resnet import resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d
from .resnet45 import resnet45
from .unet import unet
from .vgg import (
    vgg11,
    vgg11_bn,
    vgg13,
    vgg13_bn,
    vgg16,
    vgg16_bn,
    vgg19,
    vgg19_bn,
    vgg19_encoder,
)
from .vit import vit_base_patch16_224, vit_small_patch16_224, vit_tiny_patch16_224

ZOO = {
    "lenet": lenet,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "resnet152": resnet152,
    "resnext50_32x4d": resnext50_32x4d,
    "resnet45": resnet45,
    "vgg11": vgg11,
    "vgg11_bn": vgg11_bn,
    "vgg13": vgg13,
    "vgg13_bn": vgg13_bn,
    "vgg16": vgg16,
    "vgg16_bn": vgg16_bn,
    "vgg19": vgg19,
    "vgg19_bn": vgg19_bn,
    "vgg19_encoder": vgg19_encoder,
    "centernet_resnet": centernet_resnet,
    "unet": unet,
    "vit_tiny_patch16_224": vit_tiny_patch16_224,
    "vit_small_patch16_224": vit_small_patch16_224,
    "vit_base_patch16_224": vit_base_patch16_224,
    "gpt2": gpt2,
    "gpt2_1b": gpt2_1b,
    "crnn": crnn,
    "ppocrv2_rec": ppocrv2_rec,
    "ppocrv4_rec": ppocrv4_rec,
    "ppocrv4_server_rec": ppocrv4_server_rec,
    "svtr_tiny": svtr_tiny,
    "visionlan": visionlan,
    "abinet": abinet,
    "ppocrv3_det": ppocrv3_det,
    "dbnet_pplcnetv3": dbnet_pplcnetv3,
    "ppocrv4_server_det": ppocrv4_server_det,
    "ppocr_cls": ppocr_cls,
}

# A typical input for each model (N, C, H, W; token ids (N, L) for gpt2), used by the CLI
# and parity checks.
DEFAULT_INPUT = {
    "lenet": (1, 3, 32, 32),
    "resnet45": (1, 3, 32, 128),
    "centernet_resnet": (1, 3, 512, 512),
    "unet": (1, 3, 256, 256),
    "gpt2": (1, 16),  # token ids (N, L)
    "gpt2_1b": (1, 16),
    "crnn": (1, 3, 32, 128),
    "ppocrv2_rec": (1, 3, 32, 320),
    "ppocrv4_rec": (1, 3, 48, 320),
    "ppocrv4_server_rec": (1, 3, 48, 320),
    "svtr_tiny": (1, 3, 32, 100),
    "visionlan": (1, 3, 64, 256),
    "abinet": (1, 3, 32, 128),  # ABINet's fixed image size
    "ppocrv3_det": (1, 3, 320, 320),  # DBNet: any H, W divisible by 32
    "dbnet_pplcnetv3": (1, 3, 320, 320),
    "ppocrv4_server_det": (1, 3, 320, 320),
    "ppocr_cls": (1, 3, 48, 192),
}


def get(name: str, **kwargs):
    """The spec of zoo model ``name``."""
    if name not in ZOO:
        raise UnknownNameError(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
    return ZOO[name](**kwargs)


def default_input(name: str) -> tuple[int, ...]:
    if name.startswith("paddleocr:"):  # a PaddleOCR config (xinit.factories): its line height
        from .paddleocr import default_input as line_input

        return line_input(name.partition(":")[2])
    return DEFAULT_INPUT.get(name, (1, 3, 224, 224))


__all__ = [*ZOO, "ZOO", "get", "default_input"]

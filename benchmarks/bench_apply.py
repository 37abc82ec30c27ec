"""``xinit.apply(preset, model)`` vs the hand-written ``for m in model.modules()`` loop.

The same model (an xinit-built ResNet-50 in each framework) is initialised both ways.
"""

from __future__ import annotations

import xinit
from xinit import presets

from .harness import Result, interleaved


def _torch_loop(model):
    import torch.nn as nn

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            bound = 1 / m.weight.shape[1] ** 0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.uniform_(m.bias, -bound, bound)


def _paddle_loop(model):
    import paddle
    import paddle.nn as nn

    normal_fan_out = nn.initializer.KaimingNormal(mode="fan_out")
    for m in model.sublayers():
        if isinstance(m, nn.Conv2D):
            normal_fan_out(m.weight)
        elif hasattr(m, "_mean") and m.weight is not None:  # batch norm
            m.weight.set_value(paddle.ones_like(m.weight))
            m.bias.set_value(paddle.zeros_like(m.bias))
        elif isinstance(m, nn.Linear):
            bound = 1 / m.weight.shape[0] ** 0.5
            nn.initializer.Uniform(-bound, bound)(m.weight)
            nn.initializer.Uniform(-bound, bound)(m.bias)


def _flax_loop(model):
    import jax
    from flax import nnx

    he = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")
    key = jax.random.key(0)
    for _, m in nnx.iter_modules(model):
        if isinstance(m, nnx.Conv):
            key, sub = jax.random.split(key)
            m.kernel.set_value(he(sub, m.kernel.get_value().shape))
        elif isinstance(m, nnx.Linear):
            key, a, b = jax.random.split(key, 3)
            n = m.kernel.get_value().shape[0]
            bound = 1 / n**0.5
            m.kernel.set_value(
                jax.random.uniform(a, m.kernel.get_value().shape, minval=-bound, maxval=bound)
            )
            m.bias.set_value(
                jax.random.uniform(b, m.bias.get_value().shape, minval=-bound, maxval=bound)
            )
        elif hasattr(m, "scale") and hasattr(m, "var"):
            m.scale.set_value(jax.numpy.ones_like(m.scale.get_value()))
            m.bias.set_value(jax.numpy.zeros_like(m.bias.get_value()))


def run(repeats: int = 5) -> list[Result]:
    import torch

    torch.set_num_threads(2)
    spec = xinit.models.resnet50()
    policy = presets.torchvision_resnet()
    out = []
    for backend, loop in (("torch", _torch_loop), ("paddle", _paddle_loop), ("flax", _flax_loop)):
        model = xinit.build(spec, backend)
        tx, tn = interleaved(
            lambda m=model: xinit.apply(policy, m), lambda m=model, f=loop: f(m), repeats
        )
        out.append(
            Result(f"apply torchvision_resnet preset, resnet50, {backend}", tx, tn, "<= 1.05")
        )
    return out

"""``xinit.diagnose``'s measurement vs a plain forward plus backward of the same loss.

The same xinit-built ResNet-50 (batch 8, 64x64, training mode) in each framework: xinit's
``signal_pass`` (every submodule's output and output-gradient moments, every parameter's
gradient std) plus the neutral rows, against the framework's own forward and backward of
``sum(y**2)`` with the parameters' gradients taken the framework's usual way.
"""

from __future__ import annotations

import numpy as np

import xinit
from xinit._diagnose import _layer_nodes, _rows_of

from .harness import Result, interleaved

SHAPE = (8, 3, 64, 64)


def _torch_plain(model, x):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    y = model(torch.from_numpy(x))
    return torch.autograd.grad(y.square().sum(), params)


def _paddle_plain(model, x):
    import paddle

    params = [p for p in model.parameters() if not p.stop_gradient]
    model.train()
    y = model(paddle.to_tensor(x))
    return paddle.grad(y.square().sum(), params)


def _flax_plain(model, x):
    import jax.numpy as jnp
    from flax import nnx

    xl = jnp.moveaxis(jnp.asarray(x), 1, -1)
    model.train()
    return nnx.grad(lambda m: jnp.sum(jnp.square(m(xl))))(model)


def run(repeats: int = 5) -> list[Result]:
    import torch

    from xinit.backends import get_backend

    torch.set_num_threads(2)
    spec = xinit.models.resnet50()
    nodes = _layer_nodes(spec, SHAPE)
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    out = []
    for name, plain in (("torch", _torch_plain), ("paddle", _paddle_plain), ("flax", _flax_plain)):
        model = xinit.build(spec, name)
        backend = get_backend(name)

        def diagnose(m=model, b=backend, n=name):
            return _rows_of(b.signal_pass(m, x, train=True), n, "spec", nodes)

        tx, tn = interleaved(diagnose, lambda m=model, f=plain: f(m, x), repeats)
        out.append(
            Result(f"diagnose resnet50 8x3x64x64 vs forward+backward, {name}", tx, tn, "<= 1.5")
        )
    return out

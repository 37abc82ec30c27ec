"""PyTorch adapter: torch.nn modules, nn.init-style sampling with per-parameter generators."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from xinit import layers as L
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend, ResidualLogic, StepsLogic, contiguous

_ACTIVATIONS = {
    "relu": lambda s: torch.nn.ReLU(),
    "leaky_relu": lambda s: torch.nn.LeakyReLU(s.negative_slope),
    "gelu": lambda s: torch.nn.GELU(approximate=s.approximate),
    "silu": lambda s: torch.nn.SiLU(),
    "sigmoid": lambda s: torch.nn.Sigmoid(),
    "tanh": lambda s: torch.nn.Tanh(),
    "identity": lambda s: torch.nn.Identity(),
    "flatten": lambda s: torch.nn.Flatten(),
    "dropout": lambda s: torch.nn.Dropout(s.p),
}


class Steps(StepsLogic, torch.nn.Module):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self.steps = list(steps)

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_steps(x)


class Residual(ResidualLogic, torch.nn.Module):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self.body, self.shortcut, self.activation = list(body), shortcut, activation

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_residual(x)


def _dev(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


class TorchBackend(Backend):
    steps_cls, residual_cls, children_attr = Steps, Residual, "_modules"
    tensor_types = (torch.Tensor,)
    name = "torch"
    extra = "torch"

    def owns(self, module) -> bool:
        return isinstance(module, (torch.nn.Module, torch.Tensor))

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def from_numpy(self, array, device="cpu"):
        return torch.from_numpy(contiguous(array)).to(_dev(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def full(self, shape, value, device):
        return torch.full(shape, float(value), dtype=torch.float32, device=_dev(device))

    in_place = True

    def fill(self, out, value):
        with torch.no_grad():
            return out.fill_(value)

    def draw(self, dist, shape, seed, device, out=None):
        self.check_device(device)
        dev = _dev(device)
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        if out is None:
            out = torch.empty(shape, dtype=torch.float32, device=dev)
        with torch.no_grad():
            if isinstance(dist, NormalDist):
                return out.normal_(dist.mu, dist.sigma, generator=gen)
            if isinstance(dist, UniformDist):
                return out.uniform_(dist.low, dist.high, generator=gen)
            if isinstance(dist, TruncNormalDist):
                return torch.nn.init.trunc_normal_(
                    out, dist.mu, dist.sigma, dist.low, dist.high, generator=gen
                )
        raise TypeError(f"torch cannot draw {dist!r}")

    # ---- building -----------------------------------------------------------------------
    def make_layer(self, spec, device):
        nn = torch.nn
        # Built on the meta device: no memory and no default init; xinit draws every
        # parameter once in materialize/initialize (half the work of init-then-overwrite).
        with torch.device("meta"):
            if isinstance(spec, L.ConvTranspose):
                cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[spec.dims - 1]
                return cls(
                    spec.in_channels,
                    spec.out_channels,
                    spec.kernel_size,
                    spec.stride,
                    spec.padding,
                    spec.output_padding,
                    spec.groups,
                    spec.bias,
                    spec.dilation,
                )
            if isinstance(spec, L.Conv):
                cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[spec.dims - 1]
                return cls(
                    spec.in_channels,
                    spec.out_channels,
                    spec.kernel_size,
                    spec.stride,
                    spec.padding,
                    spec.dilation,
                    spec.groups,
                    spec.bias,
                )
            if isinstance(spec, L.BatchNorm):
                cls = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[spec.dims - 1]
                return cls(spec.num_features, spec.eps, spec.momentum, spec.affine)
            if isinstance(spec, L.Linear):
                return nn.Linear(spec.in_features, spec.out_features, spec.bias)
            if isinstance(spec, L.Embedding):
                return nn.Embedding(spec.num_embeddings, spec.embedding_dim)
            if isinstance(spec, L.MaxPool):
                cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[spec.dims - 1]
                return cls(spec.kernel_size, spec.stride, spec.padding, ceil_mode=spec.ceil_mode)
            if isinstance(spec, L.AvgPool):
                cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[spec.dims - 1]
                return cls(
                    spec.kernel_size,
                    spec.stride,
                    spec.padding,
                    ceil_mode=spec.ceil_mode,
                    count_include_pad=spec.count_include_pad,
                )
            if isinstance(spec, L.AdaptiveAvgPool):
                cls = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
                return cls[spec.dims - 1](spec.output_size)
            if spec.kind in _ACTIVATIONS:
                return _ACTIVATIONS[spec.kind](spec)
        raise TypeError(f"torch adapter cannot build {type(spec).__name__}")

    def materialize(self, module, spec, device):
        from xinit.blocks import param_specs

        module = module.to_empty(device=_dev(device))
        with torch.no_grad():
            for path, ps in param_specs(spec).items():
                if not ps.trainable:  # buffers: running stats and counters, from the spec
                    value = ps.init.resolve((1,), "vector").value
                    self.get_path(module, path, ps.kind).fill_(value)
        return module

    def make_sequential(self, children, steps):
        if len(set(steps)) == len(steps):
            return torch.nn.Sequential(OrderedDict(children))
        return self.steps_cls(children, steps)

    def write(self, target, value):
        with torch.no_grad():
            target.copy_(value)

    def trace(self, module, x):
        outputs, handles = {}, []
        for path, sub in module.named_modules():

            def hook(_m, _inp, out, path=path):
                outputs[path] = out.detach().cpu().numpy()

            handles.append(sub.register_forward_hook(hook))
        try:
            self.run(module, x)
        finally:
            for h in handles:
                h.remove()
        return outputs

    def forward(self, module, x, train):
        was_training = module.training
        param = next(module.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        module.train(train)
        try:
            with torch.no_grad():
                out = module(torch.from_numpy(np.ascontiguousarray(x)).to(dev))
        finally:
            module.train(was_training)
        return out.detach().cpu().numpy()

    # ---- native models (xinit.apply) ----------------------------------------------------
    def native_kind(self, module):
        nn = torch.nn
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            return "conv_transpose"
        if isinstance(module, nn.modules.conv._ConvNd):
            return "conv"
        if isinstance(module, nn.Linear):
            return "linear"
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return "batchnorm"
        if isinstance(module, nn.Embedding):
            return "embedding"
        if isinstance(module, nn.LayerNorm):
            return "layernorm"
        if isinstance(module, nn.GroupNorm):
            return "groupnorm"
        return ""

    def native_params(self, module):
        """Every ``nn.Parameter`` once (shared ones under their first name); buffers excluded."""
        seen: set[int] = set()
        for layer, sub in module.named_modules():
            kind = self.native_kind(sub)
            for leaf, p in sub.named_parameters(recurse=False):
                if id(p) in seen:
                    continue
                seen.add(id(p))
                where = f"{layer}.{leaf}" if layer else leaf
                if isinstance(p, torch.nn.parameter.UninitializedParameter):
                    raise TypeError(f"{where} is uninitialised (lazy module): run a forward first")
                if p.is_meta:
                    raise TypeError(f"{where} is on the meta device: call module.to_empty() first")
                yield self.native_param(layer, kind, leaf, leaf, p, p.shape, type(sub).__name__)

    def assign(self, holder, value):
        with torch.no_grad():
            holder.copy_(value.reshape(holder.shape))

    def holder_device(self, holder):
        return "gpu" if holder.is_cuda else "cpu"


ADAPTER = TorchBackend()

"""PaddlePaddle adapter: paddle.nn layers, Paddle's own samplers under a per-parameter seed."""

from __future__ import annotations

import contextlib

import numpy as np
import paddle

from xinit import layers as L
from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend, ResidualLogic, StepsLogic, contiguous, set_mode

nn = paddle.nn
F = paddle.nn.functional
_BN_LEAVES = {"running_mean": "_mean", "running_var": "_variance", "num_batches_tracked": None}
_ACTIVATIONS = {
    "relu": lambda s: nn.ReLU(),
    "leaky_relu": lambda s: nn.LeakyReLU(s.negative_slope),
    "gelu": lambda s: nn.GELU(approximate=s.approximate == "tanh"),
    "silu": lambda s: nn.Silu(),
    "sigmoid": lambda s: nn.Sigmoid(),
    "tanh": lambda s: nn.Tanh(),
    "identity": lambda s: nn.Identity(),
    "flatten": lambda s: nn.Flatten(1, -1),
    "dropout": lambda s: nn.Dropout(s.p),
}


def _placeholder() -> paddle.ParamAttr:
    """A zero fill for weights xinit draws right after: skips Paddle's random default init."""
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


class BatchNorm(nn.Layer):
    """Batch norm with PaddleOCR's parameter names and the neutral (PyTorch) statistics rule.

    Paddle's own BatchNorm stores the biased batch variance; the neutral spec stores the
    unbiased one, as PyTorch does, so training-mode updates are computed here. ``momentum``
    is the neutral (PyTorch) weight of the new batch; Paddle's own would be 1 - momentum.
    """

    def __init__(self, num_features: int, eps: float, momentum: float, affine: bool):
        super().__init__()
        self._epsilon, self._momentum = eps, momentum
        c = [num_features]
        if affine:
            one = nn.initializer.Constant(1.0)
            self.weight = self.create_parameter(c, default_initializer=one)
            self.bias = self.create_parameter(c, is_bias=True)
        else:
            self.weight = self.bias = None
        keep = paddle.ParamAttr(trainable=False)
        self._mean = self.create_parameter(
            c, attr=keep, default_initializer=nn.initializer.Constant(0.0)
        )
        self._variance = self.create_parameter(
            c, attr=keep, default_initializer=nn.initializer.Constant(1.0)
        )
        self._mean.stop_gradient = self._variance.stop_gradient = True

    def forward(self, x):
        if not self.training:
            return F.batch_norm(
                x, self._mean, self._variance, self.weight, self.bias, False, epsilon=self._epsilon
            )
        # Mean over the spatial axes first, then the batch: Paddle's one-pass fp32 reduction
        # over (N, *spatial) is ~30x less accurate than PyTorch's and would show in parity.
        spatial = list(range(2, x.ndim))

        def batch_mean(t):
            return (t.mean(axis=spatial) if spatial else t).mean(axis=0)

        mean = batch_mean(x)
        var = batch_mean((x - mean.reshape([1, -1] + [1] * (x.ndim - 2))) ** 2)
        n = int(np.prod(x.shape)) // x.shape[1]  # x.numel() is a Tensor, not an int
        with paddle.no_grad():
            m = self._momentum
            unbiased = var * (float(n) / max(float(n) - 1.0, 1.0))
            paddle.assign((1 - m) * self._mean + m * mean, self._mean)
            paddle.assign((1 - m) * self._variance + m * unbiased, self._variance)
        shape = [1, -1] + [1] * (x.ndim - 2)
        y = (x - mean.reshape(shape)) / paddle.sqrt(var.reshape(shape) + self._epsilon)
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


class Steps(StepsLogic, nn.Layer):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        for name, child in children.items():
            self.add_sublayer(name, child)
        self.steps = list(steps)

    def _child(self, name):
        return self._sub_layers[name]

    def forward(self, x):
        return self._run_steps(x)


class Residual(ResidualLogic, nn.Layer):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        for name, child in children.items():
            self.add_sublayer(name, child)
        self.body, self.shortcut, self.activation = list(body), shortcut, activation

    def _child(self, name):
        return self._sub_layers[name]

    def forward(self, x):
        return self._run_residual(x)


class CeilPool(nn.Layer):
    """Max or average pooling in ceil mode with PyTorch's rule (the neutral one).

    In ceil mode Paddle keeps a last window that starts inside the right padding; PyTorch
    drops it. The windows both keep are computed alike, so Paddle's extra one is cut off.
    """

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def forward(self, x):
        s = self.spec
        kw = {
            "kernel_size": list(s.kernel_size),
            "stride": list(s.stride),
            "padding": list(s.padding),
            "ceil_mode": True,
        }
        if s.kind == "max_pool":
            y = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[s.dims - 1](x, **kw)
        else:
            pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[s.dims - 1]
            y = pool(x, exclusive=not s.count_include_pad, **kw)
        sizes = [
            L.pool_out(n, k, st, p, True)
            for n, k, st, p in zip(x.shape[2:], s.kernel_size, s.stride, s.padding)
        ]
        if list(y.shape[2:]) == sizes:
            return y
        return y[(slice(None), slice(None), *(slice(0, o) for o in sizes))]


class _PaddedTranspose:
    """A transposed convolution whose output_padding reaches its stride (PyTorch allows it up
    to the dilation, Paddle refuses): computed with no padding, then cut to PyTorch's window,
    zero-filled (plus bias) where output_padding reaches past the full output."""

    spec: L.ConvTranspose

    def forward(self, x):
        s = self.spec
        fn = (F.conv1d_transpose, F.conv2d_transpose, F.conv3d_transpose)[s.dims - 1]
        y = fn(
            x,
            self.weight,
            None,
            stride=list(s.stride),
            padding=0,
            groups=s.groups,
            dilation=list(s.dilation),
        )
        for axis, (p, op) in enumerate(zip(s.padding, s.output_padding), start=2):
            full = y.shape[axis]
            end = full - p + op
            y = paddle.slice(y, [axis], [p], [min(end, full)])
            if end > full:
                shape = list(y.shape)
                shape[axis] = end - full
                y = paddle.concat([y, paddle.zeros(shape, y.dtype)], axis=axis)
        if self.bias is not None:
            y = y + self.bias.reshape([1, -1] + [1] * s.dims)
        return y


_PADDED_TRANSPOSE = tuple(
    type(f"Padded{cls.__name__}", (_PaddedTranspose, cls), {})
    for cls in (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
)


@contextlib.contextmanager
def _on(device: str):
    previous = paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    try:
        yield
    finally:
        paddle.set_device(previous)


def _place(device: str):
    return paddle.CUDAPlace(0) if device == "gpu" else paddle.CPUPlace()


@contextlib.contextmanager
def _seeded(seed: int, device: str):
    """Seed Paddle's global generator for one draw, then restore it (it has no generator arg)."""
    state = paddle.get_rng_state()
    previous = paddle.get_device()
    paddle.set_device("gpu:0" if device == "gpu" else "cpu")
    paddle.seed(seed)
    try:
        yield
    finally:
        paddle.set_device(previous)
        paddle.set_rng_state(state)


class PaddleBackend(Backend):
    steps_cls, residual_cls, children_attr = Steps, Residual, "_sub_layers"
    tensor_types = (paddle.Tensor,)
    name = "paddle"
    extra = "paddle"

    def owns(self, module) -> bool:
        return isinstance(module, (paddle.nn.Layer, paddle.Tensor))

    def devices(self) -> list[str]:
        gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
        return ["cpu", "gpu"] if gpu else ["cpu"]

    def layout(self, role, ndim):
        return (1, 0) if role == "linear" else None

    def from_numpy(self, array, device="cpu"):
        return paddle.to_tensor(contiguous(array), place=_place(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.numpy()  # already a copy, detached from the tensor's memory

    def view_numpy(self, tensor) -> np.ndarray:
        if tensor.place.is_cpu_place():
            return np.from_dlpack(tensor.detach())  # zero-copy; .numpy() copies at ~2 GB/s
        return tensor.numpy()

    def draw(self, dist, shape, seed, device):
        self.check_device(device)
        shape = list(shape)
        with _seeded(seed, device):
            if isinstance(dist, NormalDist):
                return paddle.normal(dist.mu, dist.sigma, shape)
            if isinstance(dist, UniformDist):
                return paddle.uniform(shape, "float32", dist.low, dist.high)
            if isinstance(dist, TruncNormalDist):
                init = paddle.nn.initializer.TruncatedNormal(
                    dist.mu, dist.sigma, dist.low, dist.high
                )
                return paddle.create_parameter(shape, "float32", default_initializer=init)
        raise TypeError(f"paddle cannot draw {dist!r}")

    # ---- building -----------------------------------------------------------------------
    def leaf_name(self, kind, name):
        return _BN_LEAVES.get(name, name) if kind == "batchnorm" else name

    def make_layer(self, spec, device):
        with _on(device):
            return self._make_layer(spec)

    def _make_layer(self, spec):
        bias = None if getattr(spec, "bias", True) else False
        if isinstance(spec, L.ConvTranspose):
            cls = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)[spec.dims - 1]
            padded = any(op >= s for op, s in zip(spec.output_padding, spec.stride))
            if padded:  # PyTorch allows output_padding < max(stride, dilation); Paddle < stride
                cls = _PADDED_TRANSPOSE[spec.dims - 1]
            module = cls(
                spec.in_channels,
                spec.out_channels,
                list(spec.kernel_size),
                list(spec.stride),
                list(spec.padding),
                [0] * spec.dims if padded else list(spec.output_padding),
                groups=spec.groups,  # keywords: 1-D takes (groups, dilation), 2-D/3-D swap them
                dilation=list(spec.dilation),
                weight_attr=_placeholder(),
                bias_attr=bias,
            )
            if padded:
                module.spec = spec
            return module
        if isinstance(spec, L.Conv):
            cls = (nn.Conv1D, nn.Conv2D, nn.Conv3D)[spec.dims - 1]
            return cls(
                spec.in_channels,
                spec.out_channels,
                list(spec.kernel_size),
                list(spec.stride),
                list(spec.padding),
                list(spec.dilation),
                spec.groups,
                weight_attr=_placeholder(),
                bias_attr=bias,
            )
        if isinstance(spec, L.BatchNorm):
            return BatchNorm(spec.num_features, spec.eps, spec.momentum, spec.affine)
        if isinstance(spec, L.Linear):
            return nn.Linear(
                spec.in_features, spec.out_features, weight_attr=_placeholder(), bias_attr=bias
            )
        if isinstance(spec, L.Embedding):
            return nn.Embedding(spec.num_embeddings, spec.embedding_dim, weight_attr=_placeholder())
        if isinstance(spec, (L.MaxPool, L.AvgPool)) and spec.ceil_mode:
            return CeilPool(spec)
        if isinstance(spec, L.MaxPool):
            cls = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D)[spec.dims - 1]
            return cls(
                list(spec.kernel_size),
                list(spec.stride),
                list(spec.padding),
                ceil_mode=spec.ceil_mode,
            )
        if isinstance(spec, L.AvgPool):
            cls = (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)[spec.dims - 1]
            return cls(
                list(spec.kernel_size),
                list(spec.stride),
                list(spec.padding),
                ceil_mode=spec.ceil_mode,
                exclusive=not spec.count_include_pad,
            )
        if isinstance(spec, L.AdaptiveAvgPool):
            cls = (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)
            size = spec.output_size[0] if spec.dims == 1 else list(spec.output_size)
            return cls[spec.dims - 1](size)
        if spec.kind in _ACTIVATIONS:
            return _ACTIVATIONS[spec.kind](spec)
        raise TypeError(f"paddle adapter cannot build {type(spec).__name__}")

    def make_sequential(self, children, steps):
        if len(set(steps)) == len(steps):
            return nn.Sequential(*children.items())
        return self.steps_cls(children, steps)

    def write(self, target, value):
        target.set_value(value)

    def trace(self, module, x):
        outputs, handles = {}, []
        for path, sub in [("", module), *module.named_sublayers()]:

            def hook(_m, _inp, out, path=path):
                outputs[path] = np.array(out.numpy())

            handles.append(sub.register_forward_post_hook(hook))
        try:
            self.run(module, x)
        finally:
            for h in handles:
                h.remove()
        return outputs

    def forward(self, module, x, train):
        was_training = module.training
        param = next(iter(module.parameters()), None)
        place = param.place if param is not None else paddle.CPUPlace()
        set_mode(module, train)
        try:
            with paddle.no_grad():
                out = module(paddle.to_tensor(np.ascontiguousarray(x), place=place))
        finally:
            set_mode(module, was_training)
        return np.array(out.numpy())

    # ---- native models (xinit.apply) ----------------------------------------------------
    def native_kind(self, module):
        from paddle.nn.layer.conv import _ConvNd
        from paddle.nn.layer.norm import _BatchNormBase

        transposed = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
        if isinstance(module, transposed):
            return "conv_transpose"
        if isinstance(module, _ConvNd):
            return "conv"
        if isinstance(module, nn.Linear):
            return "linear"
        if isinstance(module, (_BatchNormBase, nn.BatchNorm, BatchNorm)):
            return "batchnorm"
        if isinstance(module, nn.Embedding):
            return "embedding"
        if isinstance(module, nn.LayerNorm):
            return "layernorm"
        if isinstance(module, nn.GroupNorm):
            return "groupnorm"
        return ""

    def native_params(self, module):
        """Every parameter once; a BatchNorm's ``_mean``/``_variance`` (running statistics,
        buffers in the neutral view) are left out."""
        seen: set[int] = set()
        for layer, sub in module.named_sublayers(include_self=True):
            kind = self.native_kind(sub)
            for leaf, p in sub.named_parameters(include_sublayers=False):
                if id(p) in seen or (kind == "batchnorm" and leaf in ("_mean", "_variance")):
                    continue
                seen.add(id(p))
                yield self.native_param(layer, kind, leaf, leaf, p, p.shape, type(sub).__name__)

    def assign(self, holder, value):
        value = value.reshape(list(holder.shape))
        if value.dtype != holder.dtype:
            value = value.astype(holder.dtype)
        holder.set_value(value)

    def holder_device(self, holder):
        return "gpu" if holder.place.is_gpu_place() else "cpu"


ADAPTER = PaddleBackend()

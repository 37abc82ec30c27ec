"""PaddlePaddle adapter: paddle.nn layers, Paddle's own samplers under a per-parameter seed."""

from __future__ import annotations

import contextlib

import numpy as np
import paddle

from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend


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
        return paddle.to_tensor(np.ascontiguousarray(array), place=_place(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return np.array(tensor.numpy())

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


ADAPTER = PaddleBackend()

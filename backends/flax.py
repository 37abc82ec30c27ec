"""Flax NNX adapter: nnx modules in NHWC with HWIO kernels, jax.random sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend


def _device(device: str):
    return jax.devices("gpu")[0] if device == "gpu" else jax.devices("cpu")[0]


class FlaxBackend(Backend):
    name = "flax"
    extra = "flax"

    def owns(self, module) -> bool:
        return isinstance(module, (nnx.Module, jax.Array))

    def devices(self) -> list[str]:
        try:
            gpu = len(jax.devices("gpu")) > 0
        except RuntimeError:
            gpu = False
        return ["cpu", "gpu"] if gpu else ["cpu"]

    def layout(self, role, ndim):
        if role == "linear":
            return (1, 0)
        if role == "conv":  # (out, in/g, *k) -> (*k, in/g, out)
            return (*range(2, ndim), 1, 0)
        if role == "conv_transpose":  # (in, out/g, *k) -> (*k, in, out/g)
            return (*range(2, ndim), 0, 1)
        return None

    def from_numpy(self, array, device="cpu"):
        return jax.device_put(jnp.asarray(np.ascontiguousarray(array)), _device(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return np.asarray(jax.device_get(tensor))

    def full(self, shape, value, device):
        return jax.device_put(jnp.full(shape, value, jnp.float32), _device(device))

    def draw(self, dist, shape, seed, device):
        self.check_device(device)
        key = jax.random.key(seed)
        shape = tuple(shape)
        with jax.default_device(_device(device)):
            if isinstance(dist, NormalDist):
                return jax.random.normal(key, shape, jnp.float32) * dist.sigma + dist.mu
            if isinstance(dist, UniformDist):
                return jax.random.uniform(key, shape, jnp.float32, dist.low, dist.high)
            if isinstance(dist, TruncNormalDist):
                lo = (dist.low - dist.mu) / dist.sigma
                hi = (dist.high - dist.mu) / dist.sigma
                z = jax.random.truncated_normal(key, lo, hi, shape, jnp.float32)
                return z * dist.sigma + dist.mu
        raise TypeError(f"flax cannot draw {dist!r}")


ADAPTER = FlaxBackend()

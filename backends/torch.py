"""PyTorch adapter: torch.nn modules, nn.init-style sampling with per-parameter generators."""

from __future__ import annotations

import numpy as np
import torch

from xinit.distributions import NormalDist, TruncNormalDist, UniformDist

from .base import Backend


def _dev(device: str) -> torch.device:
    return torch.device("cuda" if device == "gpu" else "cpu")


class TorchBackend(Backend):
    name = "torch"
    extra = "torch"

    def owns(self, module) -> bool:
        return isinstance(module, (torch.nn.Module, torch.Tensor))

    def devices(self) -> list[str]:
        return ["cpu", "gpu"] if torch.cuda.is_available() else ["cpu"]

    def from_numpy(self, array, device="cpu"):
        return torch.from_numpy(np.ascontiguousarray(array)).to(_dev(device))

    def to_numpy(self, tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def full(self, shape, value, device):
        return torch.full(shape, float(value), dtype=torch.float32, device=_dev(device))

    def draw(self, dist, shape, seed, device):
        self.check_device(device)
        dev = _dev(device)
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
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


ADAPTER = TorchBackend()

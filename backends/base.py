"""The Backend protocol every adapter fulfils, and the logic all adapters share.

An adapter translates; it never decides. Distributions, fans, layouts and names are decided
in the neutral core; an adapter knows only (1) how to make, read and fill its framework's
tensors, (2) its native layout of each parameter role, and (3) how to build each layer kind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from xinit.distributions import (
    ConstantDist,
    DiracDist,
    Distribution,
    EyeDist,
    NormalDist,
    OrthogonalDist,
    construct,
)
from xinit.rng import derive_seed, keyed_normal_draw, keyed_sample

RNG_MODES = ("native", "xinit")


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


class Backend(ABC):
    """A framework adapter. Subclasses implement the abstract primitives only."""

    name: str = ""
    extra: str = ""  # the pip extra that installs the framework

    @abstractmethod
    def owns(self, module: Any) -> bool:
        """Whether ``module`` is a module (or tensor) of this framework."""

    # ---- devices and tensors ------------------------------------------------------------
    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this framework sees: ``"cpu"`` and ``"gpu"`` where available."""

    def check_device(self, device: str) -> None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu'; got {device!r}")
        if device not in self.devices():
            raise RuntimeError(f"{self.name} sees no {device!r} device (it sees {self.devices()})")

    @abstractmethod
    def from_numpy(self, array: np.ndarray, device: str = "cpu") -> Any:
        """A native tensor holding ``array`` (already in native layout)."""

    @abstractmethod
    def to_numpy(self, tensor: Any) -> np.ndarray:
        """A numpy copy of a native tensor (native layout)."""

    # ---- layouts ------------------------------------------------------------------------
    def layout(self, role: str, ndim: int) -> tuple[int, ...] | None:
        """Axis permutation from the neutral layout to this framework's, or None if the same."""
        return None

    def to_native(self, array: np.ndarray, role: str) -> np.ndarray:
        perm = self.layout(role, array.ndim)
        return array if perm is None else np.ascontiguousarray(array.transpose(perm))

    def to_neutral(self, array: np.ndarray, role: str) -> np.ndarray:
        perm = self.layout(role, array.ndim)
        return array if perm is None else np.ascontiguousarray(array.transpose(inverse(perm)))

    def native_shape(self, shape: tuple[int, ...], role: str) -> tuple[int, ...]:
        perm = self.layout(role, len(shape))
        return tuple(shape) if perm is None else tuple(shape[i] for i in perm)

    # ---- sampling -----------------------------------------------------------------------
    @abstractmethod
    def draw(self, dist: Distribution, shape: tuple[int, ...], seed: int, device: str) -> Any:
        """Sample a Normal/Uniform/TruncNormal law with this framework's own RNG, seeded."""

    def full(self, shape: tuple[int, ...], value: float, device: str) -> Any:
        return self.from_numpy(np.full(shape, value, dtype=np.float32), device)

    def sample(
        self,
        dist: Distribution,
        shape: tuple[int, ...],
        role: str,
        *,
        seed: int = 0,
        path: str = "",
        device: str = "cpu",
        rng: str = "native",
    ) -> Any:
        """A native tensor (native layout) drawn from ``dist`` for a parameter of neutral shape.

        ``rng="native"`` draws with the framework's generator seeded from ``(seed, path)``;
        ``rng="xinit"`` computes the values with xinit's keyed generator, identical everywhere.
        """
        if rng not in RNG_MODES:
            raise ValueError(f"rng must be one of {RNG_MODES}; got {rng!r}")
        shape = tuple(int(s) for s in shape)
        if isinstance(dist, ConstantDist):
            return self.full(self.native_shape(shape, role), dist.value, device)
        if isinstance(dist, (DiracDist, EyeDist)):
            return self.from_numpy(self.to_native(construct(dist, shape), role), device)
        if isinstance(dist, OrthogonalDist):
            if rng == "xinit":
                draw = keyed_normal_draw(seed, path)
            else:
                s = derive_seed(seed, path)
                std = NormalDist(0.0, 1.0)
                draw = lambda sh: self.to_numpy(self.draw(std, sh, s, "cpu"))  # noqa: E731
            return self.from_numpy(self.to_native(construct(dist, shape, draw), role), device)
        if rng == "xinit":
            values = keyed_sample(dist, shape, seed, path)
            return self.from_numpy(self.to_native(values, role), device)
        return self.draw(dist, self.native_shape(shape, role), derive_seed(seed, path), device)

    def sample_neutral(self, dist, shape, role, **kw) -> np.ndarray:
        """Like :meth:`sample`, returned as numpy in neutral layout."""
        return self.to_neutral(self.to_numpy(self.sample(dist, shape, role, **kw)), role)

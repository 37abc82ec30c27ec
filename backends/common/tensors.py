"""Tensors, devices, layouts and draws: the primitives an adapter must give (make and read
its framework's tensors, draw a law with its own generator) and the sampling built on them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
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
from xinit.layers import Layer
from xinit.parammap import ParamMap
from xinit.rng import check_rng, derive_seed, keyed_normal_draw

from ..registry import Registry
from .sharding import box_values


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The axis permutation that undoes ``perm`` (native -> neutral for a layout)."""
    return tuple(int(i) for i in np.argsort(perm))


class Tensors(ABC):
    """Devices, tensors, the role layouts and sampling. An adapter implements
    :meth:`devices`, :meth:`from_numpy`, :meth:`to_numpy` and :meth:`draw` (and :meth:`fill`
    with ``in_place``); the rest is shared."""

    name: str  # the framework (the adapter sets it)

    @abstractmethod
    def devices(self) -> list[str]:
        """Devices this framework sees: ``"cpu"`` and ``"gpu"`` where available."""

    def check_device(self, device: str) -> None:
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu'; got {device!r}")
        if device != "cpu" and device not in self.devices():  # every backend sees the CPU
            raise RuntimeError(f"{self.name} sees no {device!r} device (it sees {self.devices()})")

    @abstractmethod
    def from_numpy(self, array: np.ndarray, device: str = "cpu") -> Any:
        """A native tensor holding ``array`` (already in native layout)."""

    @abstractmethod
    def to_numpy(self, tensor: Any) -> np.ndarray:
        """A numpy copy of a native tensor (native layout)."""

    def view_numpy(self, tensor: Any) -> np.ndarray:
        """Numpy over the tensor's own memory where the framework allows it (CPU), else a copy:
        for reads that are consumed at once, such as a transfer."""
        return self.to_numpy(tensor)

    def tensor_device(self, tensor: Any) -> str:
        """``"cpu"`` or ``"gpu"``: where native tensor ``tensor`` lives."""
        return "cpu"

    # ---- layouts ------------------------------------------------------------------------
    lowerings: Registry  # this framework's lowering per layer kind (backends/<name>/lowerings.py)

    def layout(self, role: str, ndim: int) -> tuple[int, ...] | None:
        """Axis permutation from the neutral layout of fan role ``role`` to this framework's
        (None: the same), as the lowerings' parameter maps lay parameters out by default."""
        return self.lowerings.layout(role, ndim)

    def param_map(self, spec: Layer) -> ParamMap:
        """Where each neutral parameter of layer ``spec`` lives in this framework's module."""
        return self.lowerings.param_map(spec)

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

    in_place: bool = False  # draw() and fill() can write into an existing tensor

    def fill(self, out: Any, value: float) -> Any:
        raise NotImplementedError

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
        out: Any = None,
    ) -> Any:
        """A native tensor (native layout) drawn from ``dist`` for a parameter of neutral shape.

        ``out``: an existing native tensor of the native shape that adapters able to draw in
        place (``in_place``) fill directly, saving a temporary and a copy.

        ``rng="native"`` draws with the framework's generator seeded from ``(seed, path)``;
        ``rng="xinit"`` computes the values with xinit's keyed generator, identical everywhere.
        """
        check_rng(rng)
        shape = tuple(int(s) for s in shape)
        if isinstance(dist, ConstantDist):
            if out is not None and self.in_place:
                return self.fill(out, dist.value)
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
        native_shape = self.native_shape(shape, role)
        if rng == "xinit":  # the whole tensor as one box: a transposed layout in bands
            values = box_values(
                dist,
                shape,
                self.layout(role, len(shape)),
                (0,) * len(shape),
                native_shape,
                seed=seed,
                path=path,
                rng=rng,
                where="one device",
                out=self.host_array(native_shape),
            )
            return self.from_numpy(values, device)
        if out is not None and self.in_place:
            return self.draw(dist, native_shape, derive_seed(seed, path), device, out=out)
        return self.draw(dist, native_shape, derive_seed(seed, path), device)

    def host_array(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """A float32 host array that :meth:`from_numpy` takes without a copy, or None."""
        return None

    def sample_later(self, dist, shape, role, **kw) -> Callable[[], Any]:
        """Start what :meth:`sample` (same arguments, no ``out``) computes and return a
        function giving its result. Adapters whose framework computes asynchronously (JAX)
        launch the work now so that it overlaps building; by default it runs when called."""
        return lambda: self.sample(dist, shape, role, **kw)

    def sample_neutral(self, dist, shape, role, **kw) -> np.ndarray:
        """Like :meth:`sample`, returned as numpy in neutral layout."""
        return self.to_neutral(self.to_numpy(self.sample(dist, shape, role, **kw)), role)

"""Native models (``xinit.apply``, state and parity on modules xinit did not build): walking
any native module, its parameters in neutral terms, and drawing into them in place. An
adapter implements :meth:`NativeModels.named_layers`, :meth:`NativeModels.own_state`,
:meth:`NativeModels.native_params` and :meth:`NativeModels.assign`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xinit import kinds
from xinit.distributions import Distribution

from .sharding import ShardingError
from .tensors import inverse


class NativeModels:
    """Reading and filling the layers and parameters of any native module."""

    name: str  # the framework (the adapter sets it)

    def native_kind(self, module: Any) -> str:
        """The neutral kind of a native layer object ("" when no lowering claims its class)."""
        return self.lowerings.kind_of(module)

    def neutral_leaf(self, kind: str, native: str) -> str:
        """The neutral name of native leaf ``native`` of a ``kind`` layer (kernel -> weight)."""
        return self.lowerings[kind].neutral_leaf(native) if kind in self.lowerings else native

    def named_layers(self, module: Any) -> Iterator[tuple[str, Any]]:
        """``(dotted path, submodule)`` for ``module`` ("") and every submodule once, parents
        before children, in registration order."""
        raise NotImplementedError(f"the {self.name} adapter cannot walk native modules")

    def check_layer(self, path: str, layer: Any) -> None:
        """Raise TypeError, naming the parameter, when ``layer``'s own parameters cannot be read
        (torch: on the meta device, or lazy and uninitialised). By default all can."""
        return None

    def own_state(self, layer: Any) -> list[OwnTensor]:
        """The parameters and persistent buffers ``layer`` holds itself (not its children's),
        in registration order: what the framework saves of it. Non-persistent buffers (torch
        ``persistent=False``, Paddle ``persistable=False``) and Flax variables other than
        params and batch statistics (caches, RNG state) are not state and are left out."""
        raise NotImplementedError(f"the {self.name} adapter cannot walk native modules")

    def own_parameters(self, layer: Any) -> list[str]:
        """Names of the parameters and persistent buffers ``layer`` holds itself."""
        return [t.name for t in self.own_state(layer)]

    def native_params(self, module: Any):
        """Every parameter of ``module`` once, as :class:`NativeParam` (registration order)."""
        raise NotImplementedError(f"the {self.name} adapter cannot enumerate native parameters")

    def assign(self, holder: Any, value: Any) -> None:
        """Overwrite native parameter ``holder`` with native tensor ``value`` (same numel)."""
        raise NotImplementedError(f"the {self.name} adapter cannot write native parameters")

    def holder_device(self, holder: Any) -> str:
        """``"cpu"`` or ``"gpu"``: where native parameter ``holder`` lives."""
        return self.tensor_device(holder)

    def native_param(
        self,
        layer: str,
        kind: str,
        leaf: str,
        native_leaf: str,
        holder: Any,
        native_shape: tuple[int, ...],
        module_type: str,
        perm: tuple[int, ...] | None = None,
    ) -> NativeParam:
        """Describe one native parameter in neutral terms.

        ``perm`` is the neutral -> native axis permutation; by default the adapter's
        :meth:`layout` of the parameter's role for a known ``kind``, and none (the tensor as
        stored) for a layer class xinit does not know.
        """
        native_shape = tuple(int(d) for d in native_shape)
        ndim = len(native_shape)
        role = native_role(kind, leaf, ndim)
        if perm is None and kind:
            perm = self.layout(role, ndim)
        shape = tuple(native_shape[i] for i in inverse(perm)) if perm else native_shape
        if role == "vector" and ndim != 1:  # multi-dim norm scales, 0-d or >5-d tensors
            shape = (int(np.prod(native_shape, dtype=np.int64)),)
        return NativeParam(
            path=f"{layer}.{leaf}" if layer else leaf,
            native=f"{layer}.{native_leaf}" if layer else native_leaf,
            layer=layer,
            kind=kind,
            leaf=leaf,
            role=role,
            shape=shape,
            native_shape=native_shape,
            perm=tuple(perm) if perm else None,
            module_type=module_type,
            holder=holder,
        )

    def read_neutral(self, param: NativeParam) -> np.ndarray:
        """The current value of a native parameter as numpy in the neutral layout and shape."""
        value = self.to_numpy(param.holder).reshape(param.native_shape)
        if param.perm is not None:
            value = np.ascontiguousarray(value.transpose(inverse(param.perm)))
        return value.reshape(param.shape)

    def sample_into(
        self, param: NativeParam, dist: Distribution, *, seed: int = 0, rng: str = "native"
    ) -> None:
        """Draw ``dist`` for ``param`` (seeded by its neutral path) and write it in place."""
        holder = self.sharded_native(param.holder)
        if holder is not None:
            perm = param.perm
            expected = tuple(param.shape[i] for i in perm) if perm else tuple(param.shape)
            if expected != tuple(param.native_shape):
                raise ShardingError(
                    f"{param.path}: sharded tensor of shape {param.native_shape} is read as "
                    f"{param.shape}: a reshaped parameter cannot be filled shard by shard"
                )
            return self.fill_shards(
                holder, dist, param.shape, perm, seed=seed, path=param.path, rng=rng
            )
        device = self.holder_device(param.holder)
        nd = len(param.shape)
        if param.perm == self.layout(param.role, nd):  # the role's layout: what build() draws
            same = self.in_place and tuple(param.holder.shape) == tuple(param.native_shape)
            target = param.holder if same else None
            value = self.sample(
                dist,
                param.shape,
                param.role,
                seed=seed,
                path=param.path,
                device=device,
                rng=rng,
                out=target,
            )
            if value is target:
                return
        else:  # a layout the role does not imply (unknown class, transposed kernels)
            neutral = self.sample_neutral(
                dist, param.shape, param.role, seed=seed, path=param.path, rng=rng
            )
            if param.perm is not None:
                neutral = np.ascontiguousarray(neutral.transpose(param.perm))
            value = self.from_numpy(neutral, device)
        self.assign(param.holder, value)


def native_role(kind: str, leaf: str, ndim: int) -> str:
    """The fan role of a native parameter: the layer's weight role for a known weight, a
    vector for 1-d tensors and norm scales, and for a parameter of a class xinit does not know
    PyTorch's reading of its shape (2-d: linear; 3- to 5-d: conv-like) so fans are torch's."""
    role = kinds.weight_role(kind)
    if leaf == "weight" and role is not None and ndim >= 2:
        return role
    if ndim == 1 or kind:
        return "vector"
    if ndim == 2:
        return "linear"
    return "conv" if 3 <= ndim <= 5 else "vector"


@dataclass(frozen=True)
class OwnTensor:
    """One tensor a native layer holds itself, as stored: a parameter (``trainable``) or a
    persistent buffer (state, never initialised)."""

    name: str  # the attribute name (torch/Paddle) or variable name (Flax)
    shape: tuple[int, ...]
    dtype: str  # numpy's name: float32, int64, bfloat16, ...
    trainable: bool


@dataclass(frozen=True)
class NativeParam:
    """One parameter of a native module in neutral terms (see :meth:`Backend.native_param`)."""

    path: str  # neutral dotted path: layer path + neutral leaf name
    native: str  # the framework's own dotted name (flax: ``...kernel``; paddle BN: same)
    layer: str  # dotted path of the owning layer
    kind: str  # neutral kind of the owning layer ("" when unknown)
    leaf: str  # neutral leaf name (weight, bias, ...)
    role: str  # fan role
    shape: tuple[int, ...]  # neutral shape
    native_shape: tuple[int, ...]
    perm: tuple[int, ...] | None  # neutral -> native axis permutation (None: same layout)
    module_type: str  # the owning layer's class name
    holder: Any = field(repr=False, compare=False)  # the native parameter object

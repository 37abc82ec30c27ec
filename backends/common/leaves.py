"""Reaching a native module's tensors by a parameter map's leaf names: how build, state,
transfer and apply read and write parameters. An adapter gives ``children_attr`` and
``tensor_types`` and implements :meth:`LeafAccess.write`; the rest is shared."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from xinit import parammap
from xinit.blocks import children, join
from xinit.layers import Layer
from xinit.parammap import Leaf, contiguous


class LeafAccess:
    """A module's children and tensors by name, and neutral parameters through their leaves."""

    children_attr = ""  # the native attribute holding a module's named children

    def child(self, module: Any, name: str) -> Any:
        """The named direct child of a native container."""
        try:
            return getattr(module, self.children_attr)[name]
        except (KeyError, AttributeError):
            raise KeyError(f"{type(module).__name__} has no child {name!r}") from None

    tensor_types: tuple[type, ...] = ()  # what get_value accepts as a parameter or buffer

    def get_value(self, module: Any, leaf: str) -> Any:
        """The native tensor of leaf ``leaf`` of ``module``; the empty leaf of a learned-
        parameter node, whose native layer is the parameter itself, is that parameter."""
        value = getattr(module, leaf, None) if leaf else module
        if not isinstance(value, self.tensor_types):
            raise KeyError(f"{type(module).__name__} has no tensor {leaf!r}")
        return value

    def set_value(self, module: Any, leaf: str, value: Any) -> None:
        """Overwrite the leaf parameter/buffer ``leaf`` of ``module`` with a native tensor of
        the same shape (never reshaped)."""
        target = self.get_value(module, leaf)
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(
                f"{leaf}: shape {tuple(value.shape)} does not match {tuple(target.shape)}"
            )
        self.write(target, value)

    def write(self, target: Any, value: Any) -> None:
        """Copy ``value`` into the native tensor ``target`` in place."""
        raise NotImplementedError

    def write_array(
        self, layer: Any, name: str, array: np.ndarray, device: str | None = None
    ) -> None:
        """Copy numpy ``array`` (native layout, native shape) into native tensor ``name`` of
        ``layer``, on ``device`` (None: where the tensor is). ``array`` may have any strides,
        be read-only and be another module's memory (a transfer's view): adapters copy it
        once, straight into the target, where their framework allows; by default through a
        native tensor."""
        if device is None:
            device = self.tensor_device(self.tensor(layer, name))
        self.assign_leaf(layer, name, self.tensor_of(array, device))

    def reshape(self, tensor: Any, shape: tuple[int, ...]) -> Any:
        return tensor.reshape(shape)

    def tensor_of(self, array: np.ndarray, device: str = "cpu") -> Any:
        """A native tensor of exactly ``array``'s shape (0-d stays 0-d)."""
        tensor = self.from_numpy(contiguous(array), device)
        if tuple(tensor.shape) != tuple(array.shape):
            tensor = self.reshape(tensor, tuple(array.shape))
        return tensor

    def submodule(self, module: Any, path: str) -> Any:
        for part in path.split(".") if path else ():
            module = self.child(module, part)
        return module

    def tensor(self, layer: Any, name: str) -> Any:
        """The native tensor ``name`` (a parameter map's leaf name, maybe dotted) of ``layer``."""
        owner, _, leaf = name.rpartition(".")
        return self.get_value(self.submodule(layer, owner), leaf)

    def assign_leaf(self, layer: Any, name: str, value: Any) -> None:
        """Overwrite the native tensor ``name`` of ``layer`` with ``value`` (same shape)."""
        owner, _, leaf = name.rpartition(".")
        self.set_value(self.submodule(layer, owner), leaf, value)

    def native_layers(self, module: Any, spec) -> Iterator[tuple[str, Any, Layer]]:
        """``(path, native layer module, layer spec)`` for every layer of ``spec``, walking the
        native tree once, parents before children."""

        def visit(node, native, path):
            if isinstance(node, Layer):
                yield path, native, node
                return
            for name, child in children(node):
                yield from visit(child, self.child(native, name), join(path, name))

        yield from visit(spec, module, "")

    def read_param(
        self, layer: Any, leaves: tuple[Leaf, ...], shape: tuple[int, ...], *, view: bool = False
    ) -> np.ndarray:
        """A neutral parameter of ``layer`` as numpy in the neutral layout, from its native
        leaves. ``view=True`` may return a view of the module's memory (a transfer's read)."""
        read = self.view_numpy if view else self.to_numpy
        natives = {leaf.name: read(self.tensor(layer, leaf.name)) for leaf in leaves}
        return parammap.to_neutral(natives, leaves, shape)

    def write_param(
        self, layer: Any, leaves: tuple[Leaf, ...], array: np.ndarray, device: str | None = None
    ) -> None:
        """Write neutral numpy ``array`` into its native leaves of ``layer`` (on ``device``;
        None: where each leaf is)."""
        packed: dict[str, np.ndarray] = {}
        for leaf in leaves:
            value = parammap.piece(array, leaf)  # a view where numpy can: copied once below
            if leaf.into is None:
                self.write_array(layer, leaf.name, value, device)
                continue
            if leaf.name not in packed:
                packed[leaf.name] = self.to_numpy(self.tensor(layer, leaf.name))
            parammap.pack(packed, leaf.name, leaf, value)
        for name, value in packed.items():
            self.write_array(layer, name, value, device)
